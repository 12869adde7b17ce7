// Command oga-guest is a tiny oVirt guest agent for test guests (busybox initramfs, no udev).
// It speaks the OGA protocol over the virtio port (default /dev/virtio-ports/ovirt-guest-agent.0)
// using agentd/oga/ogafake, reports real data from /proc and the system where that is cheap,
// runs lifecycle hooks from a hooks directory, executes shutdown/reboot through a configurable
// command and hibernate by writing the sleep state to the kernel's power state file. Every lifecycle-event it receives is appended, with its failure flag, to
// a record file (-lifecycle-log, "<type> failure=<true|false>" per line) that tests read back
// through the QEMU guest agent: the hooks themselves cannot tell (the real agent ignores
// "failure"). Build it static: CGO_ENABLED=0 go build ./cmd/oga-guest.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"guestagent.io/operator/agentd/oga/ogafake"
)

func main() {
	device := flag.String("device", "/dev/virtio-ports/ovirt-guest-agent.0", "virtio port of the OGA channel")
	hooksDir := flag.String("hooks-dir", "/etc/ovirt-guest-agent/hooks.d", "directory with <event>/ hook script directories")
	user := flag.String("active-user", "None", `user reported by active-user ("None" = nobody)`)
	shutdownCmd := flag.String("shutdown-cmd", "poweroff -f", "command run for shutdown")
	rebootCmd := flag.String("reboot-cmd", "reboot -f", "command run for shutdown with reboot")
	heartbeat := flag.Duration("heartbeat", 5*time.Second, "heartbeat interval")
	lifecycleLog := flag.String("lifecycle-log", "/run/oga-lifecycle.log", "file recording every received lifecycle-event (empty: none)")
	powerState := flag.String("power-state", "/sys/power/state", "kernel file the hibernate command writes its state (mem or disk) to")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	g := ogafake.New(ogafake.Config{
		HeartbeatInterval: *heartbeat,
		RetryOnEOF:        true,
		Data:              func() ogafake.Data { return collect(*user) },
		RunHooks:          func(ctx context.Context, ev string) bool { return runHooks(ctx, *hooksDir, ev) },
		OnCommand: func(c ogafake.Command) {
			log.Printf("command %q", c.Name) // never log arguments: login carries a password
			switch c.Name {
			case "shutdown":
				shutdown(c, *shutdownCmd, *rebootCmd)
			case "lifecycle-event":
				recordLifecycle(*lifecycleLog, c)
			case "hibernate":
				hibernate(c, *powerState)
			}
		},
	})
	for ctx.Err() == nil {
		f, err := os.OpenFile(*device, os.O_RDWR, 0)
		if err != nil {
			log.Printf("open %s: %v (retrying)", *device, err)
			sleep(ctx, time.Second)
			continue
		}
		// Inside a guest, read() returns 0 (EOF) while no host client is connected: Serve then
		// sleeps 1 s and reads again (RetryOnEOF), like the real agent.
		if err := g.Serve(ctx, f); err != nil {
			log.Printf("serve: %v", err)
		}
		_ = f.Close()
		sleep(ctx, time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// shutdown runs the shutdown or reboot command after the requested delay (in seconds).
func shutdown(c ogafake.Command, shutdownCmd, rebootCmd string) {
	delay := 0
	if n, ok := c.Args["timeout"].(interface{ String() string }); ok {
		delay, _ = strconv.Atoi(n.String())
	}
	reboot, _ := c.Args["reboot"].(string)
	cmdline := shutdownCmd
	if strings.EqualFold(reboot, "true") {
		cmdline = rebootCmd
	}
	go func() {
		time.Sleep(time.Duration(max(delay, 0)) * time.Second)
		f := strings.Fields(cmdline)
		if len(f) == 0 {
			return
		}
		if err := exec.Command(f[0], f[1:]...).Run(); err != nil {
			log.Printf("shutdown command: %v", err)
		}
	}()
}

// hibernate puts the guest to sleep as the real agent's ovirt-hibernate script does on a guest
// without pm-utils: the state ("mem" or "disk", the protocol's default) is written to the kernel's
// power state file. The write returns only after the wake-up, so it runs on its own goroutine.
func hibernate(c ogafake.Command, path string) {
	state, _ := c.Args["state"].(string)
	if state == "" {
		state = "disk"
	}
	if state != "mem" && state != "disk" {
		log.Printf("hibernate: unknown state %q", state)
		return
	}
	go func() {
		if err := os.WriteFile(path, []byte(state), 0o644); err != nil {
			log.Printf("hibernate %s: %v", state, err)
		}
	}()
}

// recordLifecycle appends "<type> failure=<bool>" for a received lifecycle-event to path.
func recordLifecycle(path string, c ogafake.Command) {
	event, _ := c.Args["type"].(string)
	failure := false
	switch v := c.Args["failure"].(type) {
	case bool:
		failure = v
	case string:
		failure = strings.EqualFold(v, "true")
	}
	log.Printf("lifecycle-event %q failure=%v", event, failure)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Printf("lifecycle log: %v", err)
		return
	}
	defer func() { _ = f.Close() }()
	if _, err := fmt.Fprintf(f, "%s failure=%v\n", event, failure); err != nil {
		log.Printf("lifecycle log: %v", err)
	}
}

// runHooks runs every file in hooksDir/<event>, sorted. It reports false when the directory is
// missing (the real agent then never answers).
func runHooks(ctx context.Context, hooksDir, event string) bool {
	dir := filepath.Join(hooksDir, event)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		cmd := exec.CommandContext(ctx, filepath.Join(dir, n))
		if err := cmd.Run(); err != nil {
			log.Printf("hook %s/%s: %v", event, n, err)
		}
	}
	return true
}

// collect gathers the guest's data; everything is best effort.
func collect(user string) ogafake.Data {
	d := ogafake.DefaultData()
	d.ActiveUser = user
	if h, err := os.Hostname(); err == nil {
		d.Hostname, d.FQDN = h, h
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		d.OSVersion = cstr(u.Release[:])
		d.OSInfo.Kernel = d.OSVersion
	}
	d.OSInfo.Arch = runtime.GOARCH
	if runtime.GOARCH == "amd64" {
		d.OSInfo.Arch = "x86_64"
	}
	d.OSInfo.Type = "linux"
	if osr, err := readKV("/etc/os-release"); err == nil {
		d.OSInfo.Distribution = osr["ID"]
		d.OSInfo.Version = osr["VERSION_ID"]
		d.OSInfo.Codename = osr["VERSION_CODENAME"]
	} else {
		d.OSInfo.Distribution, d.OSInfo.Version, d.OSInfo.Codename = "busybox", "", ""
	}
	d.Interfaces = interfaces()
	d.CPUs = runtime.NumCPU()
	d.Applications = []string{"oga-guest-1"}
	d.Disks = nil
	if mi, err := readKV("/proc/meminfo"); err == nil {
		kib := func(k string) uint64 {
			v, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(mi[k]), " kB"), 10, 64)
			return v
		}
		d.Memory = ogafake.Memory{Total: kib("MemTotal"), Unused: kib("MemFree"), Buffers: kib("Buffers"),
			Cached: kib("Cached"), SwapTotal: kib("SwapTotal"), SwapUsage: kib("SwapTotal") - kib("SwapFree")}
	}
	var st syscall.Statfs_t
	if syscall.Statfs("/", &st) == nil {
		bs := uint64(st.Bsize)
		d.Disks = []ogafake.Disk{{Path: "/", FS: "rootfs", Total: st.Blocks * bs, Used: (st.Blocks - st.Bfree) * bs}}
	}
	return d
}

func interfaces() []ogafake.Interface {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []ogafake.Interface
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		n := ogafake.Interface{Name: i.Name, HW: i.HardwareAddr.String(), Inet: []string{}, Inet6: []string{}}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ipn.IP.To4() != nil {
				n.Inet = append(n.Inet, ipn.IP.String())
			} else {
				n.Inet6 = append(n.Inet6, ipn.IP.String())
			}
		}
		out = append(out, n)
	}
	return out
}

// readKV reads KEY=VALUE (os-release) or "Key: value" (meminfo) lines.
func readKV(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer func() { _ = f.Close() }()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = strings.Trim(v, `"'`)
		} else if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, sc.Err()
}

func cstr[T int8 | uint8](b []T) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}
