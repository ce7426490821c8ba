package qemutests

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// QGA speaks the QEMU guest agent protocol (JSON over virtio-serial, here a
// unix socket on the host). Every call connects afresh and first resyncs
// with guest-sync, so a guest reboot in between does no harm.
type QGA struct {
	Path string
	mu   sync.Mutex
}

type qgaResponse struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// Call runs one command; out receives the "return" value.
func (q *QGA) Call(ctx context.Context, cmd string, args any, out any) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", q.Path)
	if err != nil {
		return fmt.Errorf("guest agent %s: %w", cmd, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(time.Minute))
	}
	rd := bufio.NewReader(conn)
	enc := json.NewEncoder(conn)
	// Resync: stale answers from before a reboot are skipped until ours.
	id := rand.Int64N(1 << 40)
	if err := enc.Encode(map[string]any{"execute": "guest-sync", "arguments": map[string]any{"id": id}}); err != nil {
		return fmt.Errorf("guest agent sync: %w", err)
	}
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("guest agent sync: %w", err)
		}
		var r qgaResponse
		if json.Unmarshal(line, &r) == nil && string(r.Return) == fmt.Sprint(id) {
			break
		}
	}
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	if err := enc.Encode(req); err != nil {
		return fmt.Errorf("guest agent %s: %w", cmd, err)
	}
	if cmd == "guest-shutdown" {
		return nil // it answers nothing on success
	}
	line, err := rd.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("guest agent %s: %w", cmd, err)
	}
	var r qgaResponse
	if err := json.Unmarshal(line, &r); err != nil {
		return fmt.Errorf("guest agent %s: %w: %q", cmd, err, line)
	}
	if r.Error != nil {
		return fmt.Errorf("guest agent %s: %w", cmd, &AgentError{r.Error.Class, r.Error.Desc})
	}
	if out != nil {
		return json.Unmarshal(r.Return, out)
	}
	return nil
}

// Ping checks that the agent answers.
func (q *QGA) Ping(ctx context.Context) error { return q.Call(ctx, "guest-ping", nil, nil) }

// Exec runs argv in the guest, capturing its output, and waits for it.
func (q *QGA) Exec(ctx context.Context, argv []string) (ExecResult, error) {
	var started struct {
		PID int `json:"pid"`
	}
	err := q.retry(ctx, "guest-exec", map[string]any{"path": argv[0], "arg": argv[1:], "capture-output": true}, &started)
	if err != nil {
		return ExecResult{}, fmt.Errorf("guest command %v: %w", argv, err)
	}
	for {
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			Signal   int    `json:"signal"`
			OutData  string `json:"out-data"`
			ErrData  string `json:"err-data"`
		}
		if err := q.retry(ctx, "guest-exec-status", map[string]any{"pid": started.PID}, &st); err != nil {
			return ExecResult{}, fmt.Errorf("guest command %v: %w", argv, err)
		}
		if st.Exited {
			out, _ := base64.StdEncoding.DecodeString(st.OutData)
			errb, _ := base64.StdEncoding.DecodeString(st.ErrData)
			code := st.ExitCode
			if st.Signal != 0 {
				code = 128 + st.Signal
			}
			return ExecResult{Code: code, Stdout: string(out), Stderr: string(errb)}, nil
		}
		select {
		case <-ctx.Done():
			return ExecResult{}, fmt.Errorf("guest command %v: %w", argv, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// retry repeats a call that times out or fails to connect until ctx ends: a
// loaded TCG guest can leave the agent silent for tens of seconds. An error
// the agent itself returns is final.
func (q *QGA) retry(ctx context.Context, cmd string, args, out any) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := q.Call(cctx, cmd, args, out)
		cancel()
		if err == nil || errors.As(err, new(*AgentError)) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(2 * time.Second):
		}
	}
}

// AgentError is an error answered by the guest agent.
type AgentError struct{ Class, Desc string }

func (e *AgentError) Error() string { return e.Class + ": " + e.Desc }
