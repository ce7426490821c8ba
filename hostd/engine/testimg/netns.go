package testimg

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// netnsEnv marks the test binary InNetns re-executed: its value is the
// test that runs there.
const netnsEnv = "BULKHEAD_TEST_NETNS"

// InNetns runs the calling test again, alone, in a network namespace of
// its own (unshare --net, which leaves /sys and the cgroup mounts alone),
// so the bridges and iptables rules it makes never touch the host's.
// In that copy it brings up loopback and returns true: the test goes on.
// In the caller it waits for the copy, reports its output and result,
// and returns false: the test returns at once.
func InNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("bringing up lo in the test's network namespace: %v: %s", err, out)
		}
		return true
	}
	RequireHost(t)
	for _, bin := range []string{"unshare", "ip", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("needs %s (util-linux, iproute2, iptables): %v", bin, err)
		}
	}
	args := []string{"--net", os.Args[0], "-test.run", "^" + strings.ReplaceAll(t.Name(), "/", "$/^") + "$", "-test.v", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		// The copy times out first, so its own report (which test, where
		// it hung) comes back here.
		args = append(args, "-test.timeout", (time.Until(d) * 9 / 10).Round(time.Second).String())
	}
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("in its own network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("%s in its own network namespace: %v", t.Name(), err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s did not pass in its own network namespace", t.Name())
	}
	return false
}

// NetnsSh runs a shell command in the network namespace at nsPath (nsenter
// --net, which leaves /sys alone, unlike ip netns exec), or in the test's
// own when nsPath is "", and returns its output; a failure fails t.
func NetnsSh(t testing.TB, nsPath, cmd string) string {
	t.Helper()
	argv := []string{"sh", "-c", cmd}
	if nsPath != "" {
		argv = append([]string{"nsenter", "--net=" + nsPath}, argv...)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}
