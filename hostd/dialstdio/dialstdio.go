package dialstdio

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

// DefaultSocket is where hostd serves the Docker API in the image.
const DefaultSocket = "/run/docker.sock"

// Main runs `docker ARGS` and returns the exit code. Only
// `[-H|--host unix://PATH] system dial-stdio` is a command here; the
// socket is -H's, else DOCKER_HOST's when it is unix://, else
// DefaultSocket.
func Main(args []string, stdin io.Reader, stdout io.WriteCloser, stderr io.Writer) int {
	socket, err := parse(args, os.Getenv("DOCKER_HOST"))
	if err != nil {
		fmt.Fprintln(stderr, "docker:", err)
		return 1
	}
	if err := Dial(socket, stdin, stdout); err != nil {
		fmt.Fprintln(stderr, "docker system dial-stdio:", err)
		return 1
	}
	return 0
}

// parse reads the socket from the arguments of `docker ... system
// dial-stdio`; any other command is refused with what to do instead.
func parse(args []string, dockerHost string) (string, error) {
	socket := DefaultSocket
	if rest, ok := strings.CutPrefix(dockerHost, "unix://"); ok && rest != "" {
		socket = rest
	}
	var cmd []string
	for i := 0; i < len(args); i++ {
		name, v, hasValue := strings.Cut(args[i], "=")
		if name != "-H" && name != "--host" {
			cmd = append(cmd, args[i])
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return "", fmt.Errorf("%s needs a value", name)
			}
			i++
			v = args[i]
		}
		path, ok := strings.CutPrefix(v, "unix://")
		if !ok || path == "" {
			return "", fmt.Errorf("%s %q: only a unix:// socket can be dialled here", name, v)
		}
		socket = path
	}
	if strings.Join(cmd, " ") != "system dial-stdio" {
		return "", fmt.Errorf("%q: this host has no docker CLI, only `docker system dial-stdio` for remote clients. "+
			"Run docker on your own machine with DOCKER_HOST=ssh://USER@THIS-HOST, or use hostctl here", strings.Join(cmd, " "))
	}
	return socket, nil
}

// Dial connects stdin and stdout to the unix socket at path until the
// socket's side ends. The end of stdin is passed on as a half-close, and
// the socket's answers are still copied until it closes, as the docker
// CLI's dial-stdio does.
func Dial(path string, stdin io.Reader, stdout io.WriteCloser) error {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("connecting to the Docker API socket %s: %w", path, err)
	}
	defer conn.Close()
	up := make(chan error, 1)
	down := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stdin)
		if cerr := conn.CloseWrite(); err == nil {
			err = cerr
		}
		up <- err
	}()
	go func() {
		_, err := io.Copy(stdout, conn)
		if cerr := stdout.Close(); err == nil {
			err = cerr
		}
		down <- err
	}()
	select {
	case err := <-up:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("copying to %s: %w", path, err)
		}
		if err := <-down; err != nil {
			return fmt.Errorf("copying from %s: %w", path, err)
		}
	case err := <-down:
		if err != nil {
			return fmt.Errorf("copying from %s: %w", path, err)
		}
	}
	return nil
}
