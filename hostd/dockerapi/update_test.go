package dockerapi_test

import (
	"testing"
	"time"
)

// pause lets restart policies act before the next step looks.
func pause(d time.Duration) func(t *testing.T, b backend) {
	return func(*testing.T, backend) { time.Sleep(d) }
}

// updateScenario is docker update and the restart policy as dockerd runs
// them (TestDockerConformance runs it after scenario): limits reach a
// running container's cgroup (v1 here, as on this host), a restart policy
// changes, what dockerd refuses hostd refuses.
func updateScenario() []step {
	run := func(args ...string) []string { return append([]string{"run", "--network", "none"}, args...) }
	cg := func(name, file string) []string { return []string{"exec", name, "cat", "/sys/fs/cgroup/" + file} }
	inspect := func(name, format string) []string { return []string{"inspect", "-f", format, name} }
	return []step{
		// docker update on a running container.
		{args: run("-d", "--name", "upd", "{reg}/busybox", "sleep", "300"), kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"update", "--memory", "64m", "--memory-swap", "64m", "upd"}, kind: words, want: "exit 0: upd"},
		{args: inspect("upd", "{{.HostConfig.Memory}}"), kind: words, want: "exit 0: 67108864"},
		{args: cg("upd", "memory/memory.limit_in_bytes"), kind: words, want: "exit 0: 67108864"},
		{args: []string{"update", "--cpus", "0.5", "upd"}, kind: words, want: "exit 0: upd"},
		{args: inspect("upd", "{{.HostConfig.NanoCpus}}"), kind: words, want: "exit 0: 500000000"},
		{args: cg("upd", "cpu/cpu.cfs_quota_us"), kind: words, want: "exit 0: 50000"},
		{args: []string{"update", "--pids-limit", "50", "upd"}, kind: words, want: "exit 0: upd"},
		{args: inspect("upd", "{{.HostConfig.PidsLimit}}"), kind: words, want: "exit 0: 50"},
		{args: cg("upd", "pids/pids.max"), kind: words, want: "exit 0: 50"},
		{args: []string{"update", "--cpu-shares", "512", "--cpuset-cpus", "0", "--memory-reservation", "32m", "upd"}, kind: words, want: "exit 0: upd"},
		{args: inspect("upd", "{{.HostConfig.CpuShares}} {{.HostConfig.CpusetCpus}} {{.HostConfig.MemoryReservation}}"), kind: words, want: "exit 0: 512 0 33554432"},
		{args: cg("upd", "cpu/cpu.shares"), kind: words, want: "exit 0: 512"},
		{args: cg("upd", "cpuset/cpuset.cpus"), kind: words, want: "exit 0: 0"},
		{args: cg("upd", "memory/memory.soft_limit_in_bytes"), kind: words, want: "exit 0: 33554432"},
		{args: []string{"update", "--restart", "on-failure:3", "upd"}, kind: words, want: "exit 0: upd"},
		{args: inspect("upd", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"), kind: words, want: "exit 0: on-failure:3"},
		// A container restarted keeps what update gave it.
		{args: []string{"restart", "-t", "0", "upd"}, kind: words, want: "exit 0: upd"},
		{args: cg("upd", "memory/memory.limit_in_bytes"), kind: words, want: "exit 0: 67108864"},
		{args: cg("upd", "pids/pids.max"), kind: words, want: "exit 0: 50"},
		// What dockerd refuses.
		{args: []string{"update", "--memory", "1k", "upd"}, kind: errText, want: "exit 1: Minimum memory limit allowed is 6MB"},
		{args: []string{"update", "--memory", "64m", "nosuch"}, kind: errText, want: "exit 1: No such container"},
		{args: []string{"update", "--kernel-memory", "64m", "upd"}, kind: exitOnly, want: "exit 1",
			// dockerd 20.10 still takes kernel memory (deprecated); hostd
			// refuses it by name.
			dockerd: "exit 0"},
		{args: run("-d", "--rm", "--name", "updrm", "{reg}/busybox", "sleep", "300"), kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"update", "--restart", "always", "updrm"}, kind: errText, want: "exit 1: Restart policy cannot be updated because AutoRemove is enabled for the container"},
		// A stopped container gets the limits at its next start.
		{args: []string{"create", "--network", "none", "--name", "updc", "{reg}/busybox", "sleep", "300"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"update", "--memory", "32m", "--memory-swap", "32m", "updc"}, kind: words, want: "exit 0: updc"},
		{args: []string{"start", "updc"}, kind: words, want: "exit 0: updc"},
		{args: cg("updc", "memory/memory.limit_in_bytes"), kind: words, want: "exit 0: 33554432"},
		{args: []string{"rm", "-f", "upd", "updc", "updrm"}, kind: lines, want: "exit 0, 3 lines"},

		// The restart policy. A signal that is not the stop signal (HUP
		// to reload) leaves the policy on: the container, ended by it,
		// comes back. (A PID 1 without a handler ignores HUP.) dockerd
		// 20.10 takes any signal but the configured stop signal for a
		// user's stop (moby#11065, #41302): a documented difference.
		{args: run("-d", "--name", "hup", "--restart", "always", "{reg}/busybox", "sh", "-c", "trap 'exit 129' HUP; while true; do sleep 0.1; done"), kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"kill", "-s", "HUP", "hup"}, kind: words, want: "exit 0: hup"},
		{args: inspect("hup", "{{.State.Running}} {{.RestartCount}}"), before: pause(3 * time.Second), kind: words, want: "exit 0: true 1", dockerd: "exit 0: false 0"},
		{args: []string{"stop", "-t", "1", "hup"}, kind: words, want: "exit 0: hup"},
		{args: inspect("hup", "{{.State.Running}}"), before: pause(time.Second), kind: words, want: "exit 0: false"},
		// docker kill (SIGKILL) is a user's stop: no restart.
		{args: run("-d", "--name", "killed", "--restart", "always", "{reg}/busybox", "sleep", "300"), kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"kill", "killed"}, kind: words, want: "exit 0: killed"},
		{args: inspect("killed", "{{.State.Running}} {{.RestartCount}}"), before: pause(3 * time.Second), kind: words, want: "exit 0: false 0"},
		// on-failure:N counts every restart; a user's start begins the
		// count again (the log has 2 runs, then 2 more).
		{args: run("-d", "--name", "flaky", "--restart", "on-failure:1", "{reg}/busybox", "sh", "-c", "echo try; exit 1"), kind: lines, want: "exit 0, 1 lines"},
		{args: inspect("flaky", "{{.State.Running}} {{.RestartCount}}"), before: pause(3 * time.Second), kind: words, want: "exit 0: false 1"},
		{args: []string{"start", "flaky"}, kind: words, want: "exit 0: flaky"},
		{args: []string{"logs", "flaky"}, before: pause(3 * time.Second), kind: lines, want: "exit 0, 4 lines"},
		{args: inspect("flaky", "{{.State.Running}} {{.RestartCount}}"), kind: words, want: "exit 0: false 1"},
		{args: []string{"rm", "-f", "hup", "killed", "flaky"}, kind: lines, want: "exit 0, 3 lines"},

		// Inspect tells the truth: the kernel's OOM kill, --hostname, the
		// health probes' log.
		{args: run("--name", "oom", "--memory", "8m", "--memory-swap", "8m", "{reg}/busybox", "sh", "-c", "head -c 64m /dev/zero | tail"), kind: exitOnly, want: "exit 137"},
		{args: inspect("oom", "{{.State.OOMKilled}} {{.State.ExitCode}}"), kind: words, want: "exit 0: true 137"},
		{args: []string{"start", "-a", "oom"}, kind: exitOnly, want: "exit 137"},
		{args: run("--name", "nooom", "--memory", "8m", "{reg}/busybox", "true"), want: "exit 0"},
		{args: inspect("nooom", "{{.State.OOMKilled}}"), kind: words, want: "exit 0: false"},
		{args: []string{"create", "--network", "none", "--name", "hn", "--hostname", "myhost", "{reg}/busybox", "hostname"}, kind: lines, want: "exit 0, 1 lines"},
		{args: inspect("hn", "{{.Config.Hostname}}"), kind: words, want: "exit 0: myhost"},
		{args: run("-d", "--name", "hl", "--health-cmd", "echo probe-ok", "--health-interval", "1s", "{reg}/busybox", "sleep", "300"), kind: lines, want: "exit 0, 1 lines"},
		{args: run("-d", "--name", "hf", "--health-cmd", "exit 3", "--health-interval", "1s", "--health-retries", "100", "{reg}/busybox", "sleep", "300"), kind: lines, want: "exit 0, 1 lines"},
		{args: inspect("hl", "{{(index .State.Health.Log 0).ExitCode}} {{(index .State.Health.Log 0).Output}} {{.State.Health.FailingStreak}}"), before: pause(4 * time.Second),
			kind: words, want: "exit 0: 0,0 probe-ok"},
		{args: inspect("hf", "{{(index .State.Health.Log 0).ExitCode}} {{gt .State.Health.FailingStreak 1}} {{.State.Health.Status}}"), kind: words, want: "exit 0: 3 true starting"},
		{args: []string{"rm", "-f", "oom", "nooom", "hn", "hl", "hf"}, kind: lines, want: "exit 0, 5 lines"},
	}
}
