package dockerapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// TestEventsStream follows GET /events while a container runs: its
// create, start and die arrive live, in that order, and a stream with an
// until in the future ends by itself then.
func TestEventsStream(t *testing.T) {
	testimg.RequireHost(t)
	b := startHostd(t)
	testimg.Push(t, b.push+"/busybox:latest", linuxImage(t, v1.Config{Cmd: []string{"sh"}}))
	if out, code := b.docker(t, "pull", b.reg+"/busybox:latest"); code != 0 {
		t.Fatalf("pull: exit %d: %s", code, out)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", b.sock)
	}}}
	until := time.Now().Add(20 * time.Second)
	q := url.Values{
		"filters": {`{"container":{"evlive":true}}`},
		"until":   {fmt.Sprintf("%d.%09d", until.Unix(), until.Nanosecond())},
	}
	resp, err := client.Get("http://docker/events?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /events: status %d", resp.StatusCode)
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		b.docker(t, "run", "--network", "none", "--name", "evlive", b.reg+"/busybox", "sh", "-c", "exit 4")
	}()
	defer func() { <-ran }()
	var got []string
	sc := bufio.NewScanner(resp.Body)
	for len(got) < 3 && sc.Scan() {
		var ev struct {
			Action string
			Actor  struct{ Attributes map[string]string }
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		if ev.Actor.Attributes["name"] != "evlive" {
			t.Errorf("event of %q, filtered on evlive", ev.Actor.Attributes["name"])
		}
		if ev.Action == "die" && ev.Actor.Attributes["exitCode"] != "4" {
			t.Errorf("die: exitCode %q, want 4", ev.Actor.Attributes["exitCode"])
		}
		got = append(got, ev.Action)
	}
	if fmt.Sprint(got) != "[create start die]" {
		t.Fatalf("live events: got %v, want [create start die]", got)
	}
	// The stream ends at until, not before: a short until ends quickly.
	soon := time.Now().Add(500 * time.Millisecond)
	start := time.Now()
	resp2, err := client.Get(fmt.Sprintf("http://docker/events?until=%d.%09d", soon.Unix(), soon.Nanosecond()))
	if err != nil {
		t.Fatal(err)
	}
	sc = bufio.NewScanner(resp2.Body)
	for sc.Scan() {
	}
	resp2.Body.Close()
	if d := time.Since(start); d < 400*time.Millisecond || d > 10*time.Second {
		t.Errorf("a stream until %v ended after %v", soon, d)
	}
	resp3, err := client.Get("http://docker/events?since=yesterday")
	if err != nil {
		t.Fatal(err)
	}
	resp3.Body.Close()
	if resp3.StatusCode != http.StatusBadRequest {
		t.Errorf("since=yesterday: status %d, want 400", resp3.StatusCode)
	}
}
