package reboottest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// StartEtcd runs a single-member etcd on loopback with a temporary data
// directory and free ports, waits until it answers, and stops it when the
// test ends. It skips the test when the etcd binary is missing.
func StartEtcd(tb testing.TB) (endpoint string) {
	tb.Helper()
	return startEtcd(tb, tb.TempDir())
}

// StartEtcdInMemory is StartEtcd with the data directory on /dev/shm when
// it exists, so that a benchmark measures coordination rather than the
// disk's fsync latency (etcd 3.4 has no --unsafe-no-fsync).
func StartEtcdInMemory(tb testing.TB) (endpoint string) {
	tb.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "etcd-bench-")
	if err != nil {
		return startEtcd(tb, tb.TempDir())
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return startEtcd(tb, dir)
}

func startEtcd(tb testing.TB, dir string) (endpoint string) {
	tb.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		tb.Skip("etcd not found: install the Debian package etcd-server")
	}
	client, peer := freePort(tb), freePort(tb)
	endpoint = "http://" + client
	peerURL := "http://" + peer
	cmd := exec.Command(bin,
		"--name", "test",
		"--data-dir", dir+"/data",
		"--listen-client-urls", endpoint,
		"--advertise-client-urls", endpoint,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL,
		"--logger", "zap", "--log-outputs", dir+"/etcd.log",
	)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting etcd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatalf("connecting to etcd: %v", err)
	}
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "health")
		cancel()
		if err == nil {
			return endpoint
		}
		select {
		case e := <-exited:
			log, _ := os.ReadFile(dir + "/etcd.log")
			tb.Fatalf("etcd exited early (%v):\n%s", e, log)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("etcd at %s did not answer within 30s: %v", endpoint, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client connects to endpoint and closes the client when the test ends.
func Client(tb testing.TB, endpoint string) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatalf("connecting to etcd: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return fmt.Sprintf("127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
}
