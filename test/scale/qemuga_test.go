package scale

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"guestagent.io/operator/agentd/qga/qgaclient"
)

// GA_SCALE_QGA=qemu-ga: every domain's QEMU guest agent is a real Debian qemu-ga process on the
// host, listening on its own unix socket (qemu-ga in unix-listen mode serves one client at a
// time, and qga.SocketAPI keeps one connection per domain open, so it is one process per
// domain). agentd reaches them through qga.SocketAPI instead of the LibvirtAPI; the domains, their
// events and the rest of agentd still come from the test:/// driver.

const (
	qemuGABinary = "/usr/sbin/qemu-ga"
	// qemuGAParallel bounds how many agents are being started (and waited for) at once.
	qemuGAParallel = 32
	// clkTck is USER_HZ, the unit of utime/stime in /proc/<pid>/stat: 100 on every Linux ABI.
	clkTck = 100
	// maxSunPath is the size of sockaddr_un.sun_path including the terminating NUL.
	maxSunPath = 108
)

// qemuGABlocked are the commands disabled in the host agents: everything that would act on the
// test machine (the agents run as the test's user, often root): power, suspend, passwords, exec,
// files, clock, freezing and trimming filesystems, CPU/memory hot-(un)plug, SSH keys. agentd's
// poller uses none of them; its requests for them are refused as Unsupported.
var qemuGABlocked = strings.Join([]string{
	"guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid",
	"guest-set-user-password", "guest-exec", "guest-exec-status",
	"guest-file-open", "guest-file-close", "guest-file-read", "guest-file-write", "guest-file-seek", "guest-file-flush",
	"guest-set-time", "guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw", "guest-fstrim",
	"guest-set-vcpus", "guest-set-memory-blocks",
	"guest-ssh-add-authorized-keys", "guest-ssh-remove-authorized-keys",
}, ",")

// qemuGAFleet is one qemu-ga process per domain. It holds no goroutine while the agents run (a
// Wait per process would add N goroutines to the measured process): processes that die are
// found as zombies in /proc, and stop kills and reaps them all.
type qemuGAFleet struct {
	dir    string
	socks  []string // by domain index
	procs  []*os.Process
	byUUID map[string]string // read-only after start: SocketAPI's Path
	once   sync.Once
}

// path is qga.SocketAPI's Path.
func (f *qemuGAFleet) path(uuid string) (string, bool) {
	p, ok := f.byUUID[uuid]
	return p, ok
}

// sock is the socket of domain i (also written into the domain's channel in the node file).
func (f *qemuGAFleet) sock(i int) string { return f.socks[i] }

// startQemuGAFleet starts n agents, qemuGAParallel at a time, and returns once every one answers
// a guest-sync-delimited handshake (qgaclient.Dial). The agents are killed when stop is called
// or, at the latest, at test cleanup (also after t.Fatal); they also get SIGKILL if the test
// process dies (Pdeathsig), e.g. on a -timeout panic, which runs no cleanup.
func startQemuGAFleet(t testing.TB, n int) *qemuGAFleet {
	t.Helper()
	if _, err := os.Stat(qemuGABinary); err != nil {
		t.Skipf("GA_SCALE_QGA=qemu-ga needs %s (package qemu-guest-agent; hack/install-deps.sh installs it)", qemuGABinary)
	}
	// fds of the test process: per domain one SocketAPI connection and one pidfd (os.Process on
	// Linux), transiently one more while starting; plus libvirt, apiserver and OGA connections
	ensureNoFile(t, uint64(3*n+1024))
	f := &qemuGAFleet{dir: t.TempDir(), socks: make([]string, n), procs: make([]*os.Process, n), byUUID: make(map[string]string, n)}
	for i := range n {
		f.socks[i] = filepath.Join(f.dir, fmt.Sprintf("%05d", i), "qga.sock")
		f.byUUID[domainUUID(i)] = f.socks[i]
	}
	if l := len(f.socks[n-1]); l >= maxSunPath {
		t.Fatalf("agent socket path %q is %d bytes, the limit is %d: set TMPDIR to a shorter directory", f.socks[n-1], l, maxSunPath-1)
	}
	t.Cleanup(f.stop)

	start := time.Now()
	errs := make([]error, n)
	sem := make(chan struct{}, qemuGAParallel)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			f.procs[i], errs[i] = f.startOne(i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("starting %d qemu-ga processes: %v", n, err)
	}
	t.Logf("started %d qemu-ga processes in %v (%d at a time), blocked: %s", n, time.Since(start).Round(time.Millisecond), qemuGAParallel, qemuGABlocked)
	return f
}

func (f *qemuGAFleet) startOne(i int) (*os.Process, error) {
	sock := f.socks[i]
	dir := filepath.Dir(sock)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "qemu-ga.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// -t: state dir, -f: pid file (used only with -d, given so that nothing can touch /var/run)
	cmd := exec.Command(qemuGABinary, "-m", "unix-listen", "-p", sock, "-t", dir, "-f", filepath.Join(dir, "qemu-ga.pid"), "-b", qemuGABlocked)
	cmd.Stdout, cmd.Stderr = logf, logf // *os.File: no copying goroutine
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	_ = logf.Close()
	if err != nil {
		return nil, fmt.Errorf("agent %d: %w", i, err)
	}
	// ready = a client can connect and sync (the socket file exists before listen())
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := qgaclient.Dial(context.Background(), sock, 2*time.Second)
		if err == nil {
			return cmd.Process, c.Close()
		}
		if st, _, _ := procStat(cmd.Process.Pid); st == 'Z' || time.Now().After(deadline) {
			out, _ := os.ReadFile(logPath)
			return cmd.Process, fmt.Errorf("agent %d did not come up (state %q): %w; log: %q", i, st, err, bytes.TrimSpace(out))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop kills and reaps every agent (idempotent).
func (f *qemuGAFleet) stop() {
	f.once.Do(func() {
		for _, p := range f.procs {
			if p != nil {
				_ = p.Kill()
			}
		}
		for _, p := range f.procs {
			if p != nil {
				_, _ = p.Wait()
			}
		}
	})
}

// cpu is the agents' CPU time so far and how many are no longer running. The time is the sum of
// their threads' sum_exec_runtime (/proc/<pid>/task/<tid>/schedstat, nanoseconds); utime+stime
// from /proc/<pid>/stat is the fallback, but it is truncated to 10 ms per process, and an idle
// agent uses less than that per minute.
func (f *qemuGAFleet) cpu() (cpu time.Duration, dead int) {
	for _, p := range f.procs {
		st, ticks, err := procStat(p.Pid)
		if err != nil || st == 'Z' || st == 'X' {
			dead++
		}
		if ns, ok := procRuntime(p.Pid); ok {
			cpu += time.Duration(ns)
		} else {
			cpu += time.Duration(ticks) * time.Second / clkTck
		}
	}
	return cpu, dead
}

// procRuntime sums the on-CPU time (ns) of every thread of a process.
func procRuntime(pid int) (ns int64, ok bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, false
	}
	for _, tk := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, tk.Name()))
		if err != nil {
			return 0, false
		}
		fs := strings.Fields(string(b))
		if len(fs) == 0 {
			return 0, false
		}
		v, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return 0, false
		}
		ns += v
	}
	return ns, true
}

// memory is the agents' summed VmRSS (shared library pages counted once per process) and summed
// Pss (shared pages divided among the processes sharing them: their real share of memory).
func (f *qemuGAFleet) memory() (rss, pss int64) {
	for _, p := range f.procs {
		rss += procKB(fmt.Sprintf("/proc/%d/status", p.Pid), "VmRSS") << 10
		pss += procKB(fmt.Sprintf("/proc/%d/smaps_rollup", p.Pid), "Pss") << 10
	}
	return rss, pss
}

// procStat returns the state letter and utime+stime (clock ticks) of a process.
func procStat(pid int) (state byte, ticks int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// pid (comm) state ppid … : comm may contain spaces and parentheses
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fs := strings.Fields(string(b[i+1:]))
	if len(fs) < 13 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(fs[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(fs[12], 10, 64) // field 15
	return fs[0][0], ut + st, nil
}

// procKB reads a "Key:   123 kB" line of a /proc file (0 when absent).
func procKB(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == key {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// ensureNoFile makes sure the test process may open need file descriptors: it raises the
// RLIMIT_NOFILE soft limit to the hard limit when the soft one is lower (Go programs already do
// that at startup since Go 1.19; this keeps the test honest on other setups).
func ensureNoFile(t testing.TB, need uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= need {
		return
	}
	if rl.Max < need {
		t.Fatalf("RLIMIT_NOFILE hard limit %d < %d file descriptors needed: raise it (ulimit -Hn)", rl.Max, need)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("raising RLIMIT_NOFILE to %d: %v", rl.Max, err)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs() int {
	es, _ := os.ReadDir("/proc/self/fd")
	return len(es)
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	fs := strings.Fields(string(b))
	if len(fs) < 3 {
		return "?"
	}
	return strings.Join(fs[:3], " ")
}
