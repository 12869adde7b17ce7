// Package ogafake owns a guest-side implementation of the oVirt Guest Agent protocol: a fake
// ovirt-guest-agent that behaves like the real Linux agent (ovirt-guest-agent 1.0.x) on the wire.
//
// It is test support for agentd/oga (and the engine of cmd/oga-guest, which runs inside real
// guests), but a normal package. Behaviour copied from the real agent:
//   - the first heartbeat after start reports apiVersion 0, later ones the agent's maximum (3);
//   - a startup burst at start, a refresh burst on "refresh" and whenever "api-version" changes
//     the version; messages above the agent's current API version are suppressed (os-info and
//     timezone need 2, number-of-cpus 1, containers and completion 3);
//   - "refresh" without apiVersion drops the version to 0;
//   - lifecycle-event runs the hooks for the event and then answers with completion when a
//     reply_id was given, except when the hook directory of a known event is missing: the real
//     agent then fails and never answers; "failure" is ignored;
//   - set-number-of-cpus with count > 0 sets the guest's vCPU count (later reports carry it too) and
//     is answered with number-of-cpus carrying that count;
//   - echo is answered with an echo carrying the same arguments.
//
// Every received command is recorded (Received) so tests can assert what reached the guest and
// how often.
package ogafake

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"

	"slices"
	"strings"
	"sync"
	"time"
)

// MaxAPIVersion is the highest API version the real agent supports.
const MaxAPIVersion = 3

// Known lifecycle hook events (directories under hooks.d/).
var knownHooks = []string{"before_migration", "after_migration", "before_hibernation", "after_hibernation"}

// msgMinAPI is the agent's send gate (_MESSAGE_MIN_API_VERSION).
var msgMinAPI = map[string]int{
	"os-info": 2, "timezone": 2, "number-of-cpus": 1, "containers": 3, "completion": 3,
}

// Interface is one guest NIC as network-interfaces reports it.
type Interface struct {
	Name  string
	HW    string
	Inet  []string
	Inet6 []string
}

// Disk is one filesystem as disks-usage reports it (bytes).
type Disk struct {
	Path  string
	FS    string
	Total uint64
	Used  uint64
}

// Container is one entry of the containers message.
type Container struct {
	ID, Image, Status, Command string
	Names                      []string
}

// OSInfo is the os-info message.
type OSInfo struct {
	Version, Distribution, Codename, Arch, Type, Kernel string
}

// Memory holds /proc/meminfo-style figures in KiB.
type Memory struct {
	Total, Unused, Buffers, Cached, SwapTotal, SwapUsage uint64
}

// Data is everything the agent reports.
type Data struct {
	Hostname     string // host-name (the real Linux agent sends the FQDN here)
	FQDN         string
	OSVersion    string // kernel release
	OSInfo       OSInfo
	Timezone     string
	TZOffset     int // minutes east of UTC
	Interfaces   []Interface
	Applications []string
	ActiveUser   string // "" is sent as "None"
	Disks        []Disk
	DiskMapping  map[string]string // serial → device
	CPUs         int
	Containers   []Container
	Memory       Memory
}

// DefaultData is a plausible Debian guest.
func DefaultData() Data {
	return Data{
		Hostname: "guest.example.com", FQDN: "guest.example.com", OSVersion: "6.1.0-13-amd64",
		OSInfo: OSInfo{Version: "12.11", Distribution: "debian", Codename: "bookworm", Arch: "x86_64",
			Type: "linux", Kernel: "6.1.0-13-amd64"},
		Timezone: "Etc/UTC",
		Interfaces: []Interface{{Name: "eth0", HW: "52:54:00:12:34:56", Inet: []string{"192.0.2.10"},
			Inet6: []string{"fe80::5054:ff:fe12:3456"}}},
		Applications: []string{"ovirt-guest-agent-common-1.0.16-1"},
		ActiveUser:   "None",
		Disks:        []Disk{{Path: "/", FS: "ext4", Total: 270553174016, Used: 17709355008}},
		DiskMapping:  map[string]string{},
		CPUs:         2,
		Containers:   []Container{},
		Memory:       Memory{Total: 2014124, Unused: 1510384, Buffers: 32640, Cached: 247112},
	}
}

// Command is one command the fake received.
type Command struct {
	Name string
	Args map[string]any // decoded with UseNumber; nil for a malformed line
	Raw  string         // the line as received, without '\n'
	At   time.Time
}

// Config configures a Guest. Zero values take the real agent's defaults.
type Config struct {
	// Data returns the current data; called for every message sent. Default: a copy of the
	// static data set with SetData (initially DefaultData()).
	Data func() Data
	// HeartbeatInterval is the heartbeat period (default 5 s). The other periods scale with it
	// like the real agent's rates: active-user check 2×, number-of-cpus 12×, the applications
	// group 24×, disks-usage 60×.
	HeartbeatInterval time.Duration
	// MaxAPIVersion is what heartbeats report after the first one (default 3). A negative value
	// simulates a pre-versioning agent: heartbeats carry no apiVersion.
	MaxAPIVersion int
	// HookEvents lists the events whose hooks.d/<event> directory exists (used when RunHooks is
	// nil; running them is a no-op).
	HookEvents []string
	// RunHooks runs the hooks of a known event and reports whether its directory exists.
	RunHooks func(ctx context.Context, event string) (dirExists bool)
	// OnCommand is called for every received command, after the built-in handling.
	OnCommand func(Command)
	// EOFRetryDelay is how long Serve sleeps after a read returns EOF when RetryOnEOF is set
	// (default 1 s, like the real agent on a virtio port without a host client).
	EOFRetryDelay time.Duration
	// RetryOnEOF makes Serve treat EOF as "no host connected" (virtio port semantics) instead of
	// the end of the stream.
	RetryOnEOF bool
}

// Guest is a fake ovirt-guest-agent. Its state (API version, heartbeat count) belongs to the
// agent "process" and survives host reconnects, like the real agent's.
type Guest struct {
	cfg Config

	mu        sync.Mutex
	data      Data
	api       int
	heartbeat int // heartbeats sent
	lastUser  string
	started   bool
	out       io.Writer
	received  []Command
	wmu       sync.Mutex // one message at a time on out
}

// New returns a Guest; it starts with Serve or ListenAndServe.
func New(cfg Config) *Guest {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.MaxAPIVersion == 0 {
		cfg.MaxAPIVersion = MaxAPIVersion
	}
	if cfg.EOFRetryDelay <= 0 {
		cfg.EOFRetryDelay = time.Second
	}
	return &Guest{cfg: cfg, data: DefaultData()}
}

// SetData changes the static data (used when Config.Data is nil).
func (g *Guest) SetData(f func(*Data)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(&g.data)
}

// APIVersion returns the agent's current API version.
func (g *Guest) APIVersion() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.api
}

// Received returns a copy of every command received so far, in order.
func (g *Guest) Received() []Command {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.received)
}

// ReceivedNamed returns the received commands with the given name.
func (g *Guest) ReceivedNamed(name string) []Command {
	var out []Command
	for _, c := range g.Received() {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// Connected reports whether a host stream is attached.
func (g *Guest) Connected() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.out != nil
}

func (g *Guest) snapshot() Data {
	if g.cfg.Data != nil {
		return g.cfg.Data()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.data
	return d
}

// Send emits a message (subject to the agent's API gate). It is dropped when no host is attached.
func (g *Guest) Send(name string, args map[string]any) error {
	if need := msgMinAPI[name]; need > g.APIVersion() {
		return nil
	}
	m := make(map[string]any, len(args)+1)
	for k, v := range args {
		m[k] = v
	}
	m["__name__"] = name
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("ogafake: encode %s: %w", name, err)
	}
	return g.SendRaw(append(b, '\n'))
}

// SendRaw writes b as is (tests use it for malformed or hostile input). Dropped without a host.
func (g *Guest) SendRaw(b []byte) error {
	g.mu.Lock()
	out := g.out
	g.mu.Unlock()
	if out == nil {
		return nil
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if _, err := out.Write(b); err != nil {
		return fmt.Errorf("ogafake: write: %w", err)
	}
	return nil
}

// --- message builders ------------------------------------------------------------------------

func (g *Guest) sendHeartbeat() {
	d := g.snapshot()
	g.mu.Lock()
	g.heartbeat++
	first := g.heartbeat == 1
	g.mu.Unlock()
	m := d.Memory
	free := m.Unused + m.Buffers + m.Cached
	args := map[string]any{
		"free-ram": fmt.Sprint(free / 1024),
		"memory-stat": map[string]any{
			"mem_total": m.Total, "mem_unused": m.Unused, "mem_free": free, "mem_buffers": m.Buffers,
			"mem_cached": m.Cached, "swap_in": 0, "swap_out": 0, "pageflt": 0, "majflt": 0,
			"swap_usage": m.SwapUsage, "swap_total": m.SwapTotal,
		},
	}
	switch {
	case g.cfg.MaxAPIVersion < 0:
	case first:
		args["apiVersion"] = 0
	default:
		args["apiVersion"] = g.cfg.MaxAPIVersion
	}
	_ = g.Send("heartbeat", args)
}

func (g *Guest) sendUser(force bool) {
	d := g.snapshot()
	u := d.ActiveUser
	if u == "" {
		u = "None"
	}
	g.mu.Lock()
	changed := u != g.lastUser
	g.lastUser = u
	g.mu.Unlock()
	if changed || force {
		_ = g.Send("active-user", map[string]any{"name": u})
	}
}

func (g *Guest) sendApps() {
	_ = g.Send("applications", map[string]any{"applications": nonNil(g.snapshot().Applications)})
}
func (g *Guest) sendHost() { _ = g.Send("host-name", map[string]any{"name": g.snapshot().Hostname}) }
func (g *Guest) sendOSVer() {
	_ = g.Send("os-version", map[string]any{"version": g.snapshot().OSVersion})
}
func (g *Guest) sendFQDN()            { _ = g.Send("fqdn", map[string]any{"fqdn": g.snapshot().FQDN}) }
func (g *Guest) sendCPUs()            { _ = g.Send("number-of-cpus", map[string]any{"count": g.snapshot().CPUs}) }
func (g *Guest) sendSession(s string) { _ = g.Send("session-"+s, nil) }

func (g *Guest) sendTimezone() {
	d := g.snapshot()
	_ = g.Send("timezone", map[string]any{"zone": d.Timezone, "offset": d.TZOffset})
}

func (g *Guest) sendOSInfo() {
	o := g.snapshot().OSInfo
	_ = g.Send("os-info", map[string]any{"version": o.Version, "distribution": o.Distribution,
		"codename": o.Codename, "arch": o.Arch, "type": o.Type, "kernel": o.Kernel})
}

func (g *Guest) sendNICs() {
	var list []map[string]any
	for _, n := range g.snapshot().Interfaces {
		list = append(list, map[string]any{"name": n.Name, "hw": n.HW, "inet": nonNil(n.Inet), "inet6": nonNil(n.Inet6)})
	}
	_ = g.Send("network-interfaces", map[string]any{"interfaces": nonNil(list)})
}

func (g *Guest) sendContainers() {
	var list []map[string]any
	for _, c := range g.snapshot().Containers {
		list = append(list, map[string]any{"id": c.ID, "names": nonNil(c.Names), "image": c.Image,
			"status": c.Status, "command": c.Command})
	}
	_ = g.Send("containers", map[string]any{"list": nonNil(list)})
}

func (g *Guest) sendDisks() {
	d := g.snapshot()
	var disks []map[string]any
	for _, x := range d.Disks {
		disks = append(disks, map[string]any{"path": x.Path, "fs": x.FS, "total": x.Total, "used": x.Used})
	}
	mapping := map[string]any{}
	for serial, dev := range d.DiskMapping {
		mapping[serial] = map[string]any{"name": dev}
	}
	_ = g.Send("disks-usage", map[string]any{"disks": nonNil(disks), "mapping": mapping})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// startupBurst is what the agent sends when it starts.
func (g *Guest) startupBurst() {
	g.sendSession("startup")
	g.sendHost()
	g.sendOSVer()
	g.sendNICs()
	g.sendUser(true)
	g.sendApps()
	g.sendContainers()
	g.sendFQDN()
	g.sendTimezone()
	g.sendOSInfo()
}

// refreshBurst is what the agent sends on refresh or an API version change
// (number-of-cpus is not part of it).
func (g *Guest) refreshBurst() {
	g.sendSession("startup")
	g.sendUser(true)
	g.sendApps()
	g.sendContainers()
	g.sendHost()
	g.sendOSVer()
	g.sendNICs()
	g.sendDisks()
	g.sendFQDN()
	g.sendTimezone()
	g.sendOSInfo()
}

// --- running ---------------------------------------------------------------------------------

// start starts the agent "process" once: startup burst and the periodic loop until ctx ends.
func (g *Guest) start(ctx context.Context, wg *sync.WaitGroup) {
	g.mu.Lock()
	if g.started {
		g.mu.Unlock()
		return
	}
	g.started = true
	g.mu.Unlock()
	g.startupBurst()
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.loop(ctx)
	}()
}

// loop is the agent's 1-second work loop, scaled: one tick is HeartbeatInterval/5.
func (g *Guest) loop(ctx context.Context) {
	tick := max(g.cfg.HeartbeatInterval/5, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	hb, us, cpus, apps, disks := 5, 10, 60, 120, 300
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if hb--; hb <= 0 {
			g.sendHeartbeat()
			hb = 5
		}
		if us--; us <= 0 {
			g.sendUser(false)
			us = 10
		}
		if cpus--; cpus <= 0 {
			g.sendCPUs()
			cpus = 60
		}
		if apps--; apps <= 0 {
			g.sendApps()
			g.sendContainers()
			g.sendHost()
			g.sendOSVer()
			g.sendNICs()
			g.sendFQDN()
			apps = 120
		}
		if disks--; disks <= 0 {
			g.sendDisks()
			disks = 300
		}
	}
}

func (g *Guest) attach(w io.Writer) {
	g.mu.Lock()
	g.out = w
	g.mu.Unlock()
}

func (g *Guest) detach() {
	g.mu.Lock()
	g.out = nil
	g.mu.Unlock()
}

// Serve runs the agent over one stream (a char device, a pipe, a connection) until ctx ends or
// the stream fails. With Config.RetryOnEOF, EOF means "no host connected": Serve sleeps
// EOFRetryDelay and reads again. When ctx ends, Serve unblocks a pending read by setting a read
// deadline (if rw supports it) or closing rw (if it is an io.Closer).
func (g *Guest) Serve(ctx context.Context, rw io.ReadWriter) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { interrupt(rw) })
	defer stop()
	g.attach(rw)
	defer g.detach()
	g.start(ctx, &wg)
	return g.readCommands(ctx, rw)
}

func interrupt(rw io.ReadWriter) {
	if d, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		if d.SetReadDeadline(time.Unix(1, 0)) == nil {
			return
		}
	}
	if c, ok := rw.(io.Closer); ok {
		_ = c.Close()
	}
}

func (g *Guest) readCommands(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			g.handle(ctx, line[:len(line)-1])
			continue
		case errors.Is(err, bufio.ErrBufferFull):
			continue // oversized command: drop (the real agent has no such limit; hosts never send one)
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, io.EOF) && g.cfg.RetryOnEOF {
			t := time.NewTimer(g.cfg.EOFRetryDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("ogafake: read: %w", err)
	}
}

// ListenAndServe plays QEMU's listening side of a chardev with mode='bind': it listens on a unix
// socket at path and serves one host client at a time (later clients wait in the backlog, as with
// QEMU). The agent runs for the whole call; messages produced while no host is connected are
// lost. It returns nil when ctx ends, removing the socket file.
func (g *Guest) ListenAndServe(ctx context.Context, path string) error {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("ogafake: listen: %w", err)
	}
	return g.ServeListener(ctx, ln)
}

// ServeListener is ListenAndServe on an existing listener, which it closes when ctx ends.
func (g *Guest) ServeListener(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	g.start(ctx, &wg)
	for {
		conn, err := ln.Accept()
		if err != nil {
			_ = ln.Close()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ogafake: accept: %w", err)
		}
		g.serveConn(ctx, conn)
	}
}

func (g *Guest) serveConn(ctx context.Context, conn net.Conn) {
	defer func() { _ = conn.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	g.attach(conn)
	defer g.detach()
	_ = g.readCommands(ctx, conn)
}

// --- commands --------------------------------------------------------------------------------

func (g *Guest) handle(ctx context.Context, line []byte) {
	line = []byte(strings.TrimRight(string(line), "\r"))
	c := Command{Raw: string(line), At: time.Now()}
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.UseNumber()
	var args map[string]any
	if err := dec.Decode(&args); err == nil && args != nil {
		c.Args = args
		c.Name, _ = args["__name__"].(string)
		delete(args, "__name__")
	}
	g.mu.Lock()
	g.received = append(g.received, c)
	g.mu.Unlock()
	if c.Args != nil {
		g.apply(ctx, c)
	}
	if g.cfg.OnCommand != nil {
		g.cfg.OnCommand(c)
	}
}

func argInt(v any) (int, bool) {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i), true
		}
		if f, err := x.Float64(); err == nil {
			return int(f), true
		}
	case string:
		var i int
		if _, err := fmt.Sscan(strings.TrimSpace(x), &i); err == nil {
			return i, true
		}
	}
	return 0, false
}

func (g *Guest) apply(ctx context.Context, c Command) {
	switch c.Name {
	case "refresh":
		if _, ok := c.Args["apiVersion"]; !ok {
			g.mu.Lock()
			if g.api > 0 {
				g.api = 0
			}
			g.mu.Unlock()
		}
		g.refreshBurst()
	case "api-version":
		v, ok := argInt(c.Args["apiVersion"])
		if !ok {
			return
		}
		v = max(0, min(v, max(g.cfg.MaxAPIVersion, 0)))
		g.mu.Lock()
		changed := v != g.api
		g.api = v
		g.mu.Unlock()
		if changed {
			g.refreshBurst()
		}
	case "lifecycle-event":
		event, _ := c.Args["type"].(string)
		if slices.Contains(knownHooks, event) && !g.runHooks(ctx, event) {
			return // the real agent fails on a missing hooks.d/<event> and never answers
		}
		if id, ok := c.Args["reply_id"].(string); ok {
			_ = g.Send("completion", map[string]any{"reply_id": id, "done": true})
		}
	case "set-number-of-cpus":
		if n, ok := argInt(c.Args["count"]); ok && n > 0 {
			// The guest has n vCPUs now: its periodic reports say so too (otherwise the next one
			// would undo the answer before a test could see it).
			g.SetData(func(d *Data) { d.CPUs = n })
			_ = g.Send("number-of-cpus", map[string]any{"count": n})
		}
	case "echo":
		_ = g.Send("echo", c.Args)
	}
}

func (g *Guest) runHooks(ctx context.Context, event string) bool {
	if g.cfg.RunHooks != nil {
		return g.cfg.RunHooks(ctx, event)
	}
	return slices.Contains(g.cfg.HookEvents, event)
}

// SetUser changes the active user; the next user check reports it (and the session events a
// real desktop would produce are up to the test).
func (g *Guest) SetUser(name string) { g.SetData(func(d *Data) { d.ActiveUser = name }) }
