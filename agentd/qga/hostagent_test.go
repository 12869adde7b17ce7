package qga

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/qga/qgaclient"
	"guestagent.io/operator/agentd/virt"
)

const hostQGA = "/usr/sbin/qemu-ga"

// hostQGABlocked are the commands blocked on the host peer: they would act on the test machine.
const hostQGABlocked = "guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-user-password,guest-exec,guest-file-open,guest-set-time"

// startHostQGA runs Debian's qemu-ga on a unix socket in a temp dir and returns the socket path
// and the process. It is killed at cleanup.
func startHostQGA(t *testing.T) (string, *os.Process) {
	t.Helper()
	if _, err := os.Stat(hostQGA); err != nil {
		t.Skipf("%s not installed (hack/install-deps.sh installs qemu-guest-agent)", hostQGA)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "qga.sock")
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hostQGA, "-m", "unix-listen", "-p", sock, "-t", state, "-b", hostQGABlocked)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-exited
	})
	// ready = a client can connect and sync (the socket file exists before listen())
	NewWithT(t).Eventually(func() error {
		c, err := qgaclient.Dial(context.Background(), sock, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err
	}).WithTimeout(10*time.Second).WithPolling(5*time.Millisecond).Should(Succeed(), "qemu-ga up")
	return sock, cmd.Process
}

func TestHostQemuGARawAndTranslations(t *testing.T) {
	sock, _ := startHostQGA(t)
	ctx := context.Background()

	// raw client: guest-info, capability parsing, blocked commands reported as disabled
	c, err := qgaclient.Dial(ctx, sock, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.Call(ctx, CmdInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	ai, err := ParseAgentInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	caps := newCaps(ai)
	if caps.Version == "" || !caps.Enabled(CmdOSInfo) || !caps.Enabled(CmdInterfaces) {
		t.Fatalf("caps = %+v", caps)
	}
	if caps.Enabled(CmdShutdown) || caps.Enabled("guest-exec") || !slices.Contains(caps.Disabled, "guest-exec") {
		t.Errorf("blocked commands must be listed but disabled: disabled=%v", caps.Disabled)
	}
	if _, err := c.Call(ctx, "guest-no-such-command", nil); err == nil {
		t.Error("unknown command: want error")
	} else if cl := ClassOf(classifySocket("guest-no-such-command", err)); cl != ErrUnsupported {
		t.Errorf("unknown command class = %v (%v)", cl, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// the same agent through SocketAPI and the translations
	api := NewSocketAPI(func(string) (string, bool) { return sock, true })
	defer func() { _ = api.Close() }()
	const u = "host"
	to := 2 * time.Second

	r, err := api.GuestInfo(ctx, u, InfoOS, to)
	if err != nil {
		t.Fatal(err)
	}
	osi := TranslateOS(r.OS)
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	if osi == nil || osi.Type != guest.OSTypeLinux || osi.Arch != "x86_64" || osi.KernelRelease != utsString(uts.Release[:]) || osi.ID == "" {
		t.Errorf("OS = %+v (kernel %q)", osi, utsString(uts.Release[:]))
	}

	r, err = api.GuestInfo(ctx, u, InfoHostname, to)
	if err != nil {
		t.Fatal(err)
	}
	hn, _ := os.Hostname()
	if h := TranslateHostname(r.Hostname); h == nil || h.Name != hn {
		t.Errorf("hostname = %+v, want %q", h, hn)
	}

	r, err = api.GuestInfo(ctx, u, InfoTimezone, to)
	if err != nil {
		t.Fatal(err)
	}
	if tz := TranslateTimezone(r.Timezone); tz == nil {
		t.Errorf("timezone nil from %+v", r.Timezone)
	}

	r, err = api.GuestInfo(ctx, u, InfoUsers, to)
	if err != nil {
		t.Fatal(err)
	}
	if us := TranslateUsers(r.Users); us == nil || us.List == nil {
		t.Errorf("users = %+v", us)
	}

	r, err = api.GuestInfo(ctx, u, InfoFilesystem, to)
	if err != nil {
		t.Fatal(err)
	}
	fs := TranslateFilesystems(r.FS)
	if fs == nil {
		t.Fatal("filesystems nil")
	}
	for _, f := range fs.List {
		if f.Mountpoint == "" || (f.HasUsage && f.TotalBytes == 0) {
			t.Errorf("bad filesystem %+v", f)
		}
	}
	t.Logf("host fsinfo: %d filesystems", len(fs.List))

	if r, err = api.GuestInfo(ctx, u, InfoDisks, to); err != nil {
		t.Errorf("guest-get-disks: %v", err)
	} else if d := TranslateDisks(r.Disks); d == nil {
		t.Error("disks nil")
	}

	ifs, err := api.Interfaces(ctx, u, to)
	if err != nil {
		t.Fatal(err)
	}
	n := TranslateInterfaces(ifs)
	lo := slices.IndexFunc(n.Interfaces, func(i guest.Interface) bool { return i.Name == "lo" })
	if lo < 0 || !slices.Contains(n.Interfaces[lo].IPv4, "127.0.0.1/8") {
		t.Errorf("interfaces = %+v", n.Interfaces)
	}

	vs, err := api.VCPUs(ctx, u, to)
	if err != nil {
		t.Fatal(err)
	}
	if v := TranslateVCPUs(vs); v == nil || v.Online < 1 {
		t.Errorf("vcpus = %+v", v)
	}

	// guest-get-devices is Windows-only in qemu-ga 7.2: listed but answered as unsupported
	if _, err := api.Raw(ctx, u, CmdDevices, to); ClassOf(err) != ErrUnsupported {
		t.Errorf("guest-get-devices on Linux: class %v (%v), want Unsupported", ClassOf(err), err)
	}
	// a blocked command is Unsupported, and the connection stays usable afterwards
	if err := api.SetTime(ctx, u, time.Now(), to); ClassOf(err) != ErrUnsupported {
		t.Errorf("blocked guest-set-time: class %v (%v)", ClassOf(err), err)
	}
	if _, err := api.Raw(ctx, u, CmdPing, to); err != nil {
		t.Errorf("ping after error: %v", err)
	}
}

func TestHostQemuGATimeoutAndResync(t *testing.T) {
	sock, proc := startHostQGA(t)
	ctx := context.Background()
	api := NewSocketAPI(func(string) (string, bool) { return sock, true })
	defer func() { _ = api.Close() }()
	if _, err := api.Raw(ctx, "h", CmdPing, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	// hang the agent: the call must fail as Timeout within its deadline
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	_, err := api.Raw(ctx, "h", CmdInfo, 300*time.Millisecond)
	if ClassOf(err) != ErrTimeout {
		t.Fatalf("hung agent: class %v (%v), want Timeout", ClassOf(err), err)
	}
	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// after the agent recovers, a re-dialled connection resyncs past the stale reply
	NewWithT(t).Eventually(func() error {
		raw, err := api.Raw(ctx, "h", CmdInfo, 2*time.Second)
		if err != nil {
			return err
		}
		if ai, perr := ParseAgentInfo(raw); perr != nil || ai.Version == "" {
			t.Fatalf("after resync: %v %+v", perr, ai)
		}
		return nil
	}).WithTimeout(10*time.Second).WithPolling(50*time.Millisecond).Should(Succeed(), "agent recovered")
}

func utsString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// The whole poller over SocketAPI against the real qemu-ga: capability gating with the blocked
// commands, every group translated from real replies, and the Linux-only unsupported command.
func TestHostQemuGAPollerOverSocket(t *testing.T) {
	sock, _ := startHostQGA(t)
	api := NewSocketAPI(func(string) (string, bool) { return sock, true })
	defer func() { _ = api.Close() }()
	clk := newFakeClock()
	p, err := NewQemuGuestAgentPoller(Config{API: api, Clock: clk, Log: testr.New(t), Tick: time.Hour, CallTimeout: 2 * time.Second,
		Domains: func() []virt.Domain {
			return []virt.Domain{{UUID: "host", Name: "host", State: virt.StateRunning, QGAChannel: guest.ChannelConnected}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	NewWithT(t).Eventually(func() bool {
		i, _ := p.Info("host")
		return i != nil && i.OS != nil && i.Hostname != nil && i.Timezone != nil && i.Users != nil && i.Network != nil &&
			i.VCPUs != nil && i.Filesystems != nil && i.Disks != nil
	}).WithTimeout(10*time.Second).Should(BeTrue(), "first complete poll")
	NewWithT(t).Eventually(p.idle).WithTimeout(5*time.Second).Should(BeTrue(), "idle")
	st, _ := p.State("host")
	if !st.Responsive || st.Version == "" || !slices.Contains(st.UnsupportedCommands, CmdDevices) {
		t.Errorf("state = %+v", st)
	}
	if slices.Contains(st.SupportedCommands, CmdShutdown) {
		t.Error("blocked guest-shutdown reported as supported")
	}
	if err := p.Shutdown(context.Background(), "host", ShutdownPowerdown); ClassOf(err) != ErrUnsupported {
		t.Errorf("shutdown of a blocked command must be refused before sending: %v", err)
	}
	if err := p.Ping(context.Background(), "host"); err != nil {
		t.Errorf("ping: %v", err)
	}
}

// Real qemu-ga 7.2 stats: guest-get-cpustats and guest-get-diskstats are enabled on Linux and
// reach the poller's Stats; guest-get-load (QEMU ≥ 10) is not listed, so it is never sent.
func TestHostQemuGAStats(t *testing.T) {
	sock, _ := startHostQGA(t)
	api := NewSocketAPI(func(string) (string, bool) { return sock, true })
	defer func() { _ = api.Close() }()
	raw, err := api.Raw(context.Background(), "host", CmdInfo, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ai, err := ParseAgentInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	caps := newCaps(ai)
	if !caps.Enabled(CmdCPUStats) || !caps.Enabled(CmdDiskStats) {
		t.Skipf("qemu-ga %s does not enable %s/%s", caps.Version, CmdCPUStats, CmdDiskStats)
	}
	p, err := NewQemuGuestAgentPoller(Config{API: api, Clock: newFakeClock(), Log: testr.New(t), Tick: time.Hour, CallTimeout: 2 * time.Second,
		Domains: func() []virt.Domain {
			return []virt.Domain{{UUID: "host", Name: "host", State: virt.StateRunning, QGAChannel: guest.ChannelConnected}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var s *guest.Stats
	NewWithT(t).Eventually(func() bool {
		s = p.Stats("host")
		return s != nil && s.CPU != nil && s.Disks != nil
	}).WithTimeout(10*time.Second).Should(BeTrue(), "stats from the real agent")
	if !s.CPU.Has[guest.CPUUser] || !s.CPU.Has[guest.CPUIdle] || s.CPU.Seconds[guest.CPUIdle] <= 0 {
		t.Errorf("cpu = %+v", s.CPU)
	}
	if s.Load != nil && !caps.Enabled(CmdLoad) {
		t.Errorf("load without %s", CmdLoad)
	}
	for _, d := range s.Disks {
		if d.Name == "" || strings.HasPrefix(d.Name, "loop") && d.Reads == 0 && d.Writes == 0 {
			t.Errorf("disk %+v", d)
		}
	}
	t.Logf("host stats: cpu user %.0f s, idle %.0f s, %d disks", s.CPU.Seconds[guest.CPUUser], s.CPU.Seconds[guest.CPUIdle], len(s.Disks))
}
