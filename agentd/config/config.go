// Package config owns agentd's configuration: defaults, the optional YAML file (usually mounted
// from a ConfigMap), command-line flags, and validation. Precedence is defaults < file < flags
// that were set explicitly. Invalid configuration is an error at start, never a silent default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Duration is a time.Duration that reads and writes as a Go duration string ("30s", "5m").
type Duration struct{ time.Duration }

// UnmarshalJSON accepts a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// Periods are the QEMU guest agent polling periods per data group, and the period of libvirt's
// memory statistics.
type Periods struct {
	Capabilities Duration `json:"capabilities"`
	Users        Duration `json:"users"`
	System       Duration `json:"system"`
	CPUs         Duration `json:"cpus"`
	Disks        Duration `json:"disks"`
	// Stats is the period of the metrics-only commands (guest-get-load, guest-get-cpustats,
	// guest-get-diskstats); 0 disables them.
	Stats        Duration `json:"stats"`
	BootWindow   Duration `json:"bootWindow"`
	CallTimeout  Duration `json:"callTimeout"`
	FailureDelay Duration `json:"failureThrottle"`
	// MemoryStats is the period of reading libvirt's memory statistics of every running domain.
	MemoryStats Duration `json:"memoryStats"`
}

// QGASockets configures the domains agentd reaches on a direct QEMU guest agent socket.
type QGASockets struct {
	// Directory is watched for sockets named <name>_<uuid>.sock: one domain per socket file,
	// present while the file exists. Empty: no directory.
	Directory string `json:"directory,omitempty"`
	// Domains are configured domains; each exists as long as it is configured.
	Domains []SocketDomain `json:"domains,omitempty"`
	// Interval is how often the directory is scanned and every socket probed (guest-sync).
	Interval Duration `json:"interval"`
}

// SocketDomain is one configured socket domain.
type SocketDomain struct {
	// Name is the domain name (spec.domainName of its GuestAgentStatus).
	Name string `json:"name"`
	// UUID is the domain UUID (canonical 8-4-4-4-12 hex form): the identity of its status.
	UUID string `json:"uuid"`
	// Socket is the host path of the agent's unix socket (QEMU's chardev for the
	// org.qemu.guest_agent.0 port).
	Socket string `json:"socket"`
}

// Enabled reports whether any socket domain is configured.
func (q QGASockets) Enabled() bool { return q.Directory != "" || len(q.Domains) > 0 }

// Workers is the number of concurrent agent calls: PollWorkers, or when 0, 4 with libvirt and 16
// for sockets only. Through libvirt every call is a request on agentd's one connection, and
// libvirtd serves at most 5 requests of a client at once (max_client_requests): 4 leave a slot
// for agentd's other libvirt calls (domain lookups, power requests, memory statistics). Direct
// sockets share no server, and more calls in flight let one wake-up of agentd serve several
// replies (measured in docs/benchmarks.md).
func (c Config) Workers() int {
	switch {
	case c.PollWorkers > 0:
		return c.PollWorkers
	case c.LibvirtEnabled():
		return 4
	}
	return 16
}

// LibvirtEnabled reports whether agentd connects to libvirt.
func (c Config) LibvirtEnabled() bool { return c.LibvirtURI != "" }

// MaxBalloonStatsPeriod is the largest balloon statistics period accepted (seconds; one day).
const MaxBalloonStatsPeriod = 86400

// Config is agentd's whole configuration.
type Config struct {
	// NodeName is this node's name (Downward API: spec.nodeName, env NODE_NAME).
	NodeName string `json:"nodeName"`
	// LibvirtURI is the libvirt connection URI. Empty disables libvirt: agentd then serves only
	// the domains of QGASockets (sockets-only mode, for nodes without libvirtd).
	LibvirtURI string `json:"libvirtURI"`
	// QGASockets are QEMU guest agent sockets of domains libvirt does not run (plain QEMU, other
	// launchers); agentd talks to those agents directly.
	QGASockets QGASockets `json:"qgaSockets"`
	// DefaultNamespace receives the GuestAgentStatus of domains without placement metadata.
	DefaultNamespace string `json:"defaultNamespace"`
	// Poll holds the QGA polling periods.
	Poll Periods `json:"poll"`
	// PollWorkers bounds concurrent QGA calls across domains; 0 chooses (see Workers).
	PollWorkers int `json:"pollWorkers"`
	// EnableOvirtAgent turns the oVirt guest agent Listener on.
	EnableOvirtAgent bool `json:"enableOvirtAgent"`
	// LifecycleHooks sends OGA lifecycle hooks (after_migration, after_hibernation) on libvirt events.
	LifecycleHooks bool `json:"lifecycleHooks"`
	// TimeSync sets the guest clock from the host (QEMU guest agent guest-set-time) after the
	// domain resumes from a pause, is restored from a save image, migrated in, reverted to a
	// snapshot or wakes up from suspend.
	TimeSync bool `json:"timeSync"`
	// BalloonStatsPeriodSeconds is set as the balloon statistics period (live only) of running
	// domains whose virtio balloon device has none, so that QEMU polls the guest's balloon
	// driver and libvirt reports the guest-side memory figures. 0 never changes a domain.
	BalloonStatsPeriodSeconds int `json:"balloonStatsPeriodSeconds"`
	// MemoryChangePercent is the relative change of a volatile figure (memory, used bytes) that
	// is significant enough to be written to the GuestAgentStatus.
	MemoryChangePercent int `json:"memoryChangePercent"`
	// PublishMinInterval is the minimum time between two writes of one GuestAgentStatus.
	PublishMinInterval Duration `json:"publishMinInterval"`
	// QPS and Burst limit agentd's API client.
	QPS   float32 `json:"qps"`
	Burst int     `json:"burst"`
	// PublishQPS and PublishBurst limit the status writes within the client's limit, so that
	// commands keep the rest of it while a node publishes many new or changed objects. 0 means
	// 80 % of QPS and Burst (see PublishLimits).
	PublishQPS   float32 `json:"publishQPS"`
	PublishBurst int     `json:"publishBurst"`
	// MetricsAddr serves /metrics ("0" disables); HealthAddr serves /healthz and /readyz.
	MetricsAddr string `json:"metricsAddr"`
	HealthAddr  string `json:"healthAddr"`
	// PprofAddr serves Go's /debug/pprof profiles ("" or "0" disables, the default). Bind it to
	// localhost: profiles expose memory contents such as guest data.
	PprofAddr string `json:"pprofAddr,omitempty"`
}

// Default returns the default configuration (node name from $NODE_NAME).
func Default() Config {
	return Config{
		NodeName:         os.Getenv("NODE_NAME"),
		LibvirtURI:       "qemu:///system",
		DefaultNamespace: "guestagent-system",
		Poll: Periods{
			Capabilities: Duration{300 * time.Second},
			Users:        Duration{10 * time.Second},
			System:       Duration{120 * time.Second},
			CPUs:         Duration{60 * time.Second},
			Disks:        Duration{300 * time.Second},
			Stats:        Duration{60 * time.Second},
			BootWindow:   Duration{120 * time.Second},
			CallTimeout:  Duration{1 * time.Second},
			FailureDelay: Duration{60 * time.Second},
			MemoryStats:  Duration{15 * time.Second},
		},
		QGASockets:                QGASockets{Interval: Duration{30 * time.Second}},
		BalloonStatsPeriodSeconds: 10,
		PollWorkers:               0,
		EnableOvirtAgent:          true,
		LifecycleHooks:            true,
		TimeSync:                  true,
		MemoryChangePercent:       5,
		PublishMinInterval:        Duration{1 * time.Second},
		QPS:                       50,
		Burst:                     100,
		MetricsAddr:               ":8080",
		HealthAddr:                ":8081",
	}
}

// Load builds the configuration from defaults, the file named by --config (if any) and flags.
func Load(fs *flag.FlagSet, args []string) (Config, error) {
	cfg := Default()
	var file string
	flagCfg := Default()
	fs.StringVar(&file, "config", "", "Path of a YAML configuration file (optional).")
	fs.StringVar(&flagCfg.NodeName, "node-name", flagCfg.NodeName, "Name of this node (default $NODE_NAME).")
	fs.StringVar(&flagCfg.LibvirtURI, "libvirt-uri", flagCfg.LibvirtURI,
		"libvirt connection URI; empty disables libvirt (sockets-only mode, needs --qga-socket-dir or qgaSockets.domains).")
	fs.StringVar(&flagCfg.QGASockets.Directory, "qga-socket-dir", "",
		"Directory of QEMU guest agent sockets named <name>_<uuid>.sock, of domains libvirt does not run.")
	fs.DurationVar(&flagCfg.QGASockets.Interval.Duration, "qga-socket-interval", flagCfg.QGASockets.Interval.Duration,
		"How often the QGA socket directory is scanned and every socket probed.")
	fs.StringVar(&flagCfg.DefaultNamespace, "default-namespace", flagCfg.DefaultNamespace,
		"Namespace of GuestAgentStatus objects for domains without placement metadata.")
	fs.IntVar(&flagCfg.PollWorkers, "poll-workers", flagCfg.PollWorkers, "Concurrent QEMU guest agent calls.")
	fs.BoolVar(&flagCfg.EnableOvirtAgent, "enable-ovirt-agent", flagCfg.EnableOvirtAgent, "Serve oVirt guest agent channels.")
	fs.BoolVar(&flagCfg.LifecycleHooks, "lifecycle-hooks", flagCfg.LifecycleHooks,
		"Send oVirt guest agent lifecycle hooks on libvirt migration/restore events.")
	fs.BoolVar(&flagCfg.TimeSync, "time-sync", flagCfg.TimeSync,
		"Set the guest clock through the QEMU guest agent after resume, restore, migration, snapshot revert and wake-up.")
	fs.IntVar(&flagCfg.BalloonStatsPeriodSeconds, "balloon-stats-period", flagCfg.BalloonStatsPeriodSeconds,
		"Balloon statistics period (seconds) set, live only, on running domains whose balloon has none; 0 never changes a domain.")
	fs.DurationVar(&flagCfg.Poll.MemoryStats.Duration, "poll-memory-stats", flagCfg.Poll.MemoryStats.Duration,
		"Period of reading libvirt's memory statistics.")
	fs.IntVar(&flagCfg.MemoryChangePercent, "memory-change-percent", flagCfg.MemoryChangePercent,
		"Relative change (percent) of memory/usage figures worth a status write.")
	fs.DurationVar(&flagCfg.PublishMinInterval.Duration, "publish-min-interval", flagCfg.PublishMinInterval.Duration,
		"Minimum interval between two writes of one GuestAgentStatus.")
	qps := float64(flagCfg.QPS)
	fs.Float64Var(&qps, "kube-api-qps", qps, "Client-side QPS limit towards the API server.")
	fs.IntVar(&flagCfg.Burst, "kube-api-burst", flagCfg.Burst, "Client-side burst towards the API server.")
	pubQPS := float64(flagCfg.PublishQPS)
	fs.Float64Var(&pubQPS, "publish-qps", pubQPS, "Status writes per second, within --kube-api-qps.")
	fs.IntVar(&flagCfg.PublishBurst, "publish-burst", flagCfg.PublishBurst, "Status write burst, within --kube-api-burst.")
	fs.StringVar(&flagCfg.MetricsAddr, "metrics-bind-address", flagCfg.MetricsAddr, "Metrics address (0 disables).")
	fs.StringVar(&flagCfg.HealthAddr, "health-probe-bind-address", flagCfg.HealthAddr, "Health probe address.")
	fs.StringVar(&flagCfg.PprofAddr, "pprof-bind-address", flagCfg.PprofAddr, "Go profiling (/debug/pprof) address; empty or 0 disables.")
	fs.DurationVar(&flagCfg.Poll.Capabilities.Duration, "poll-capabilities", flagCfg.Poll.Capabilities.Duration, "guest-info period.")
	fs.DurationVar(&flagCfg.Poll.Users.Duration, "poll-users", flagCfg.Poll.Users.Duration, "Users period.")
	fs.DurationVar(&flagCfg.Poll.System.Duration, "poll-system", flagCfg.Poll.System.Duration, "Host name/OS/timezone/NICs period.")
	fs.DurationVar(&flagCfg.Poll.CPUs.Duration, "poll-cpus", flagCfg.Poll.CPUs.Duration, "vCPU period.")
	fs.DurationVar(&flagCfg.Poll.Disks.Duration, "poll-disks", flagCfg.Poll.Disks.Duration, "Filesystems/disks period.")
	fs.DurationVar(&flagCfg.Poll.Stats.Duration, "poll-stats", flagCfg.Poll.Stats.Duration, "Load/CPU time/disk I/O metrics period (0 disables).")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	flagCfg.QPS = float32(qps)
	flagCfg.PublishQPS = float32(pubQPS)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return cfg, fmt.Errorf("reading config file: %w", err)
		}
		if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", file, err)
		}
	}
	// Flags set explicitly win over the file.
	fs.Visit(func(f *flag.Flag) { applyFlag(&cfg, &flagCfg, f.Name) })
	return cfg, cfg.Validate()
}

func applyFlag(cfg, fl *Config, name string) {
	switch name {
	case "node-name":
		cfg.NodeName = fl.NodeName
	case "libvirt-uri":
		cfg.LibvirtURI = fl.LibvirtURI
	case "qga-socket-dir":
		cfg.QGASockets.Directory = fl.QGASockets.Directory
	case "qga-socket-interval":
		cfg.QGASockets.Interval = fl.QGASockets.Interval
	case "default-namespace":
		cfg.DefaultNamespace = fl.DefaultNamespace
	case "poll-workers":
		cfg.PollWorkers = fl.PollWorkers
	case "enable-ovirt-agent":
		cfg.EnableOvirtAgent = fl.EnableOvirtAgent
	case "lifecycle-hooks":
		cfg.LifecycleHooks = fl.LifecycleHooks
	case "time-sync":
		cfg.TimeSync = fl.TimeSync
	case "balloon-stats-period":
		cfg.BalloonStatsPeriodSeconds = fl.BalloonStatsPeriodSeconds
	case "poll-memory-stats":
		cfg.Poll.MemoryStats = fl.Poll.MemoryStats
	case "memory-change-percent":
		cfg.MemoryChangePercent = fl.MemoryChangePercent
	case "publish-min-interval":
		cfg.PublishMinInterval = fl.PublishMinInterval
	case "kube-api-qps":
		cfg.QPS = fl.QPS
	case "kube-api-burst":
		cfg.Burst = fl.Burst
	case "publish-qps":
		cfg.PublishQPS = fl.PublishQPS
	case "publish-burst":
		cfg.PublishBurst = fl.PublishBurst
	case "metrics-bind-address":
		cfg.MetricsAddr = fl.MetricsAddr
	case "health-probe-bind-address":
		cfg.HealthAddr = fl.HealthAddr
	case "pprof-bind-address":
		cfg.PprofAddr = fl.PprofAddr
	case "poll-capabilities":
		cfg.Poll.Capabilities = fl.Poll.Capabilities
	case "poll-users":
		cfg.Poll.Users = fl.Poll.Users
	case "poll-system":
		cfg.Poll.System = fl.Poll.System
	case "poll-cpus":
		cfg.Poll.CPUs = fl.Poll.CPUs
	case "poll-disks":
		cfg.Poll.Disks = fl.Poll.Disks
	case "poll-stats":
		cfg.Poll.Stats = fl.Poll.Stats
	}
}

// PublishLimits returns the status writes' rate and burst: the configured ones, or 80 % of the
// client's (at least 1 and 1).
func (c Config) PublishLimits() (float64, int) {
	qps, burst := float64(c.PublishQPS), c.PublishBurst
	if qps == 0 {
		qps = max(float64(c.QPS)*0.8, 1)
	}
	if burst == 0 {
		burst = max(c.Burst*4/5, 1)
	}
	return qps, burst
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.NodeName == "" {
		bad("nodeName is required (set --node-name or $NODE_NAME from the Downward API)")
	} else if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
		bad("nodeName %q: %s", c.NodeName, strings.Join(msgs, "; "))
	}
	if c.LibvirtURI == "" {
		if !c.QGASockets.Enabled() {
			bad("libvirtURI is empty (libvirt disabled) and no qgaSockets are configured: agentd would serve no domain " +
				"(set libvirtURI, e.g. qemu:///system, or qgaSockets.directory / qgaSockets.domains)")
		}
	} else if !strings.Contains(c.LibvirtURI, ":") {
		bad("libvirtURI %q is not a URI (e.g. qemu:///system)", c.LibvirtURI)
	}
	errs = append(errs, c.QGASockets.validate()...)
	if msgs := validation.IsDNS1123Label(c.DefaultNamespace); len(msgs) > 0 {
		bad("defaultNamespace %q: %s", c.DefaultNamespace, strings.Join(msgs, "; "))
	}
	periods := []struct {
		name string
		d    time.Duration
		min  time.Duration
	}{
		{"poll.capabilities", c.Poll.Capabilities.Duration, time.Second},
		{"poll.users", c.Poll.Users.Duration, time.Second},
		{"poll.system", c.Poll.System.Duration, time.Second},
		{"poll.cpus", c.Poll.CPUs.Duration, time.Second},
		{"poll.disks", c.Poll.Disks.Duration, time.Second},
		{"poll.bootWindow", c.Poll.BootWindow.Duration, 0},
		{"poll.callTimeout", c.Poll.CallTimeout.Duration, 100 * time.Millisecond},
		{"poll.failureThrottle", c.Poll.FailureDelay.Duration, 0},
		{"poll.memoryStats", c.Poll.MemoryStats.Duration, time.Second},
		{"publishMinInterval", c.PublishMinInterval.Duration, 0},
	}
	if s := c.Poll.Stats.Duration; s != 0 && (s < 10*time.Second || s > 24*time.Hour) {
		bad("poll.stats must be 0 (disabled) or between 10s and 24h, got %s", s)
	}
	for _, p := range periods {
		if p.d < p.min {
			bad("%s must be at least %s, got %s", p.name, p.min, p.d)
		}
		if p.d > 24*time.Hour {
			bad("%s must be at most 24h, got %s", p.name, p.d)
		}
	}
	if c.PollWorkers < 0 || c.PollWorkers > 256 {
		bad("pollWorkers must be in [0 (automatic), 256], got %d", c.PollWorkers)
	}
	if c.BalloonStatsPeriodSeconds < 0 || c.BalloonStatsPeriodSeconds > MaxBalloonStatsPeriod {
		bad("balloonStatsPeriodSeconds must be in [0, %d] seconds (0 leaves every domain's setting unchanged), got %d",
			MaxBalloonStatsPeriod, c.BalloonStatsPeriodSeconds)
	}
	if c.MemoryChangePercent < 0 || c.MemoryChangePercent > 100 {
		bad("memoryChangePercent must be in [0, 100], got %d", c.MemoryChangePercent)
	}
	if c.QPS <= 0 {
		bad("qps must be positive, got %v", c.QPS)
	}
	if c.Burst < 1 {
		bad("burst must be at least 1, got %d", c.Burst)
	}
	if c.PublishQPS < 0 || c.PublishQPS > c.QPS {
		bad("publishQPS must be in [0 (80%% of qps), qps (%v)], got %v", c.QPS, c.PublishQPS)
	}
	if c.PublishBurst < 0 || c.PublishBurst > c.Burst {
		bad("publishBurst must be in [0 (80%% of burst), burst (%d)], got %d", c.Burst, c.PublishBurst)
	}
	for name, addr := range map[string]string{"metricsAddr": c.MetricsAddr, "healthAddr": c.HealthAddr, "pprofAddr": c.PprofAddr} {
		if addr == "0" || (name != "metricsAddr" && addr == "") {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s %q: %v", name, addr, err)
		}
	}
	return errors.Join(errs...)
}

// maxSocketPath is the longest unix socket path (sockaddr_un.sun_path without its NUL).
const maxSocketPath = 107

// validate reports every problem of the socket configuration.
func (q QGASockets) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if q.Directory != "" && !filepath.IsAbs(q.Directory) {
		bad("qgaSockets.directory %q must be an absolute path", q.Directory)
	}
	if q.Enabled() && (q.Interval.Duration < 100*time.Millisecond || q.Interval.Duration > time.Hour) {
		bad("qgaSockets.interval must be in [100ms, 1h], got %s", q.Interval.Duration)
	}
	names, uuids, socks := map[string]int{}, map[string]int{}, map[string]int{}
	for i, d := range q.Domains {
		at := fmt.Sprintf("qgaSockets.domains[%d]", i)
		if d.Name == "" {
			bad("%s.name is required", at)
		} else if len(d.Name) > 253 || strings.ContainsAny(d.Name, "\x00/") {
			bad("%s.name %q must be 1-253 characters without '/'", at, d.Name)
		} else if j, dup := names[d.Name]; dup {
			bad("%s.name %q is also the name of qgaSockets.domains[%d]", at, d.Name, j)
		} else {
			names[d.Name] = i
		}
		if d.UUID == "" {
			bad("%s.uuid is required (the domain's identity; e.g. QEMU's -uuid)", at)
		} else if u, ok := CanonicalUUID(d.UUID); !ok {
			bad("%s.uuid %q is not a UUID (want 8-4-4-4-12 hex digits, e.g. 6f1c2a9e-1b7d-4c55-9a0e-3f2b8c1d4e5a)", at, d.UUID)
		} else if j, dup := uuids[u]; dup {
			bad("%s.uuid %s is also the UUID of qgaSockets.domains[%d]", at, u, j)
		} else {
			uuids[u] = i
		}
		switch {
		case d.Socket == "":
			bad("%s.socket is required", at)
		case !filepath.IsAbs(d.Socket):
			bad("%s.socket %q must be an absolute path", at, d.Socket)
		case len(d.Socket) > maxSocketPath:
			bad("%s.socket %q is %d bytes long; unix socket paths are limited to %d", at, d.Socket, len(d.Socket), maxSocketPath)
		default:
			if j, dup := socks[filepath.Clean(d.Socket)]; dup {
				bad("%s.socket %q is also the socket of qgaSockets.domains[%d]", at, d.Socket, j)
			} else {
				socks[filepath.Clean(d.Socket)] = i
			}
		}
	}
	return errs
}

// CanonicalUUID returns u in canonical lower-case 8-4-4-4-12 form; ok is false when u is not
// a UUID in that form (upper-case hex digits are accepted).
func CanonicalUUID(u string) (string, bool) {
	if len(u) != 36 {
		return "", false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
				return "", false
			}
		}
	}
	return strings.ToLower(u), true
}
