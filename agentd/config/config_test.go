package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	return Load(flag.NewFlagSet("agentd", flag.ContinueOnError), args)
}

func TestDefaultsNeedNodeName(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	_, err := load(t)
	if err == nil || !strings.Contains(err.Error(), "nodeName is required") {
		t.Fatalf("want nodeName error, got %v", err)
	}
	t.Setenv("NODE_NAME", "node-a")
	cfg, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeName != "node-a" || cfg.LibvirtURI != "qemu:///system" || cfg.Poll.Users.Duration != 10*time.Second {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestFilePrecedenceAndFlags(t *testing.T) {
	t.Setenv("NODE_NAME", "node-a")
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("libvirtURI: test:///default\npoll:\n  users: 30s\nqps: 20\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := load(t, "--config", p, "--kube-api-qps", "7")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LibvirtURI != "test:///default" {
		t.Errorf("file value lost: %q", cfg.LibvirtURI)
	}
	if cfg.Poll.Users.Duration != 30*time.Second {
		t.Errorf("file duration lost: %v", cfg.Poll.Users)
	}
	if cfg.Poll.System.Duration != 120*time.Second {
		t.Errorf("default overwritten by partial file: %v", cfg.Poll.System)
	}
	if cfg.QPS != 7 {
		t.Errorf("explicit flag must win over file: %v", cfg.QPS)
	}
}

func TestBadInputIsAnError(t *testing.T) {
	t.Setenv("NODE_NAME", "node-a")
	dir := t.TempDir()
	cases := map[string]string{
		"unknown field":   "libvirtUri: x\n",
		"bad duration":    "poll:\n  users: often\n",
		"too short":       "poll:\n  users: 10ms\n",
		"bad namespace":   "defaultNamespace: Not_A_Namespace\n",
		"bad workers":     "pollWorkers: -1\n",
		"many workers":    "pollWorkers: 257\n",
		"bad percent":     "memoryChangePercent: 101\n",
		"bad addr":        "metricsAddr: nonsense\n",
		"bad pprof addr":  "pprofAddr: localhost\n",
		"stats too short": "poll:\n  stats: 2s\n",
		"stats negative":  "poll:\n  stats: -1m\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := load(t, "--config", p); err == nil {
				t.Fatalf("config %q accepted", body)
			}
		})
	}
	if _, err := load(t, "--config", filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := load(t, "--node-name", "UPPER_case"); err == nil {
		t.Fatal("invalid node name accepted")
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := Default()
	c.NodeName = ""
	c.PollWorkers = -1
	c.QPS = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"nodeName", "pollWorkers", "qps"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// The status writes' limit must fit within the client's limit; values outside are refused with
// the limit they exceed, flags set them, and unset they take 80 % of the client's.
func TestPublishLimits(t *testing.T) {
	for name, tc := range map[string]struct {
		qps   float32
		burst int
		want  string
	}{
		"negative qps":           {-1, 10, "publishQPS must be in [0 (80% of qps), qps (50)], got -1"},
		"above the client qps":   {51, 10, "publishQPS must be in [0 (80% of qps), qps (50)], got 51"},
		"negative burst":         {10, -1, "publishBurst must be in [0 (80% of burst), burst (100)], got -1"},
		"above the client burst": {10, 101, "publishBurst must be in [0 (80% of burst), burst (100)], got 101"},
	} {
		c := Default()
		c.NodeName = "n1"
		c.PublishQPS, c.PublishBurst = tc.qps, tc.burst
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
	cfg, err := Load(flag.NewFlagSet("t", flag.ContinueOnError),
		[]string{"--node-name=n1", "--publish-qps=12.5", "--publish-burst=30"})
	if err != nil {
		t.Fatal(err)
	}
	if q, b := cfg.PublishLimits(); q != 12.5 || b != 30 {
		t.Errorf("flags not applied: %v %v", q, b)
	}
	d := Default()
	if q, b := d.PublishLimits(); q != 40 || b != 80 {
		t.Errorf("default limits %v/%v, want 40/80 (80 %% of the client's 50/100)", q, b)
	}
	d.QPS, d.Burst = 1, 1
	if q, b := d.PublishLimits(); q != 1 || b != 1 {
		t.Errorf("limits of a 1/1 client %v/%v, want 1/1", q, b)
	}
}

func TestQGASocketsFromFileAndFlags(t *testing.T) {
	t.Setenv("NODE_NAME", "node-a")
	p := filepath.Join(t.TempDir(), "c.yaml")
	body := `libvirtURI: ""
qgaSockets:
  interval: 2s
  domains:
  - name: vm1
    uuid: 6F1C2A9E-1B7D-4C55-9A0E-3F2B8C1D4E5A
    socket: /run/vm1/qga.sock
`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := load(t, "--config", p, "--qga-socket-dir", "/run/qga")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LibvirtEnabled() || !cfg.QGASockets.Enabled() {
		t.Errorf("libvirt enabled %v, sockets enabled %v", cfg.LibvirtEnabled(), cfg.QGASockets.Enabled())
	}
	q := cfg.QGASockets
	if q.Directory != "/run/qga" || q.Interval.Duration != 2*time.Second || len(q.Domains) != 1 || q.Domains[0].Socket != "/run/vm1/qga.sock" {
		t.Errorf("qgaSockets = %+v", q)
	}
	// sockets-only from flags alone
	cfg, err = load(t, "--libvirt-uri=", "--qga-socket-dir=/run/qga")
	if err != nil || cfg.LibvirtEnabled() || cfg.QGASockets.Interval.Duration != 30*time.Second {
		t.Errorf("flags-only sockets mode: %+v, %v", cfg.QGASockets, err)
	}
	// both libvirt and sockets
	if cfg, err = load(t, "--qga-socket-dir=/run/qga"); err != nil || !cfg.LibvirtEnabled() {
		t.Errorf("libvirt + sockets: %v", err)
	}
}

func TestQGASocketsBadInput(t *testing.T) {
	t.Setenv("NODE_NAME", "node-a")
	dir := t.TempDir()
	const u1 = "6f1c2a9e-1b7d-4c55-9a0e-3f2b8c1d4e5a"
	long := "/" + strings.Repeat("s", 120)
	cases := map[string]struct{ body, want string }{
		"no domain source": {"libvirtURI: \"\"\n", "libvirtURI is empty (libvirt disabled) and no qgaSockets are configured"},
		"relative dir":     {"qgaSockets: {directory: run/qga}\n", `qgaSockets.directory "run/qga" must be an absolute path`},
		"bad interval":     {"qgaSockets: {directory: /run/qga, interval: 10ms}\n", "qgaSockets.interval must be in [100ms, 1h], got 10ms"},
		"missing uuid":     {"qgaSockets: {domains: [{name: a, socket: /a.sock}]}\n", "qgaSockets.domains[0].uuid is required"},
		"bad uuid":         {"qgaSockets: {domains: [{name: a, uuid: 1234, socket: /a.sock}]}\n", `qgaSockets.domains[0].uuid "1234" is not a UUID`},
		"bad uuid digit":   {"qgaSockets: {domains: [{name: a, uuid: 6f1c2a9e-1b7d-4c55-9a0e-3f2b8c1d4e5g, socket: /a.sock}]}\n", "is not a UUID"},
		"missing name":     {"qgaSockets: {domains: [{uuid: " + u1 + ", socket: /a.sock}]}\n", "qgaSockets.domains[0].name is required"},
		"slash in name":    {"qgaSockets: {domains: [{name: a/b, uuid: " + u1 + ", socket: /a.sock}]}\n", `qgaSockets.domains[0].name "a/b" must be`},
		"missing socket":   {"qgaSockets: {domains: [{name: a, uuid: " + u1 + "}]}\n", "qgaSockets.domains[0].socket is required"},
		"relative socket":  {"qgaSockets: {domains: [{name: a, uuid: " + u1 + ", socket: a.sock}]}\n", `qgaSockets.domains[0].socket "a.sock" must be an absolute path`},
		"long socket":      {"qgaSockets: {domains: [{name: a, uuid: " + u1 + ", socket: " + long + "}]}\n", "unix socket paths are limited to 107"},
		"duplicate uuid": {"qgaSockets: {domains: [{name: a, uuid: " + u1 + ", socket: /a.sock}, {name: b, uuid: " + strings.ToUpper(u1) + ", socket: /b.sock}]}\n",
			"qgaSockets.domains[1].uuid " + u1 + " is also the UUID of qgaSockets.domains[0]"},
		"duplicate name": {"qgaSockets: {domains: [{name: a, uuid: " + u1 + ", socket: /a.sock}, {name: a, uuid: 00000000-0000-0000-0000-000000000001, socket: /b.sock}]}\n",
			`qgaSockets.domains[1].name "a" is also the name of qgaSockets.domains[0]`},
		"duplicate socket": {"qgaSockets: {domains: [{name: a, uuid: " + u1 + ", socket: /x/a.sock}, {name: b, uuid: 00000000-0000-0000-0000-000000000001, socket: /x/./a.sock}]}\n",
			`qgaSockets.domains[1].socket "/x/./a.sock" is also the socket of qgaSockets.domains[0]`},
		"unknown key": {"qgaSockets: {dir: /run/qga}\n", `unknown field "dir"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := load(t, "--config", p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("config %q: error %v, want it to contain %q", c.body, err, c.want)
			}
		})
	}
	if _, err := load(t, "--qga-socket-dir=relative"); err == nil || !strings.Contains(err.Error(), "must be an absolute path") {
		t.Errorf("relative --qga-socket-dir: %v", err)
	}
}

func TestCanonicalUUID(t *testing.T) {
	if u, ok := CanonicalUUID("6F1C2A9E-1B7D-4C55-9A0E-3F2B8C1D4E5A"); !ok || u != "6f1c2a9e-1b7d-4c55-9a0e-3f2b8c1d4e5a" {
		t.Errorf("got %q %v", u, ok)
	}
	for _, bad := range []string{"", "6f1c2a9e1b7d4c559a0e3f2b8c1d4e5a", "6f1c2a9e-1b7d-4c55-9a0e-3f2b8c1d4e5", "6f1c2a9e_1b7d-4c55-9a0e-3f2b8c1d4e5a"} {
		if _, ok := CanonicalUUID(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBalloonStatsPeriod(t *testing.T) {
	t.Setenv("NODE_NAME", "node-a")
	cfg, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BalloonStatsPeriodSeconds != 10 || cfg.Poll.MemoryStats.Duration != 15*time.Second {
		t.Fatalf("defaults: period %d, poll %s", cfg.BalloonStatsPeriodSeconds, cfg.Poll.MemoryStats)
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("balloonStatsPeriodSeconds: 0\npoll:\n  memoryStats: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = load(t, "--config", p); err != nil || cfg.BalloonStatsPeriodSeconds != 0 || cfg.Poll.MemoryStats.Duration != time.Minute {
		t.Fatalf("file: %+v %v", cfg, err)
	}
	if cfg, err = load(t, "--config", p, "--balloon-stats-period", "30", "--poll-memory-stats", "5s"); err != nil ||
		cfg.BalloonStatsPeriodSeconds != 30 || cfg.Poll.MemoryStats.Duration != 5*time.Second {
		t.Fatalf("flags must win: %+v %v", cfg, err)
	}
	for _, bad := range []string{"-1", "86401"} {
		_, err := load(t, "--balloon-stats-period", bad)
		if err == nil || !strings.Contains(err.Error(), "balloonStatsPeriodSeconds must be in [0, 86400]") {
			t.Errorf("period %s: want a clear error, got %v", bad, err)
		}
	}
	if _, err := load(t, "--poll-memory-stats", "100ms"); err == nil || !strings.Contains(err.Error(), "poll.memoryStats") {
		t.Errorf("a too short memory stats period must be refused, got %v", err)
	}
}

func TestStatsPeriod(t *testing.T) {
	t.Setenv("NODE_NAME", "node-a")
	cfg, err := load(t)
	if err != nil || cfg.Poll.Stats.Duration != time.Minute {
		t.Fatalf("default stats period %v, %v", cfg.Poll.Stats, err)
	}
	cfg, err = load(t, "--poll-stats", "0")
	if err != nil || cfg.Poll.Stats.Duration != 0 {
		t.Fatalf("0 must be accepted (disabled): %v, %v", cfg.Poll.Stats, err)
	}
	cfg, err = load(t, "--poll-stats", "2m")
	if err != nil || cfg.Poll.Stats.Duration != 2*time.Minute {
		t.Fatalf("--poll-stats 2m: %v, %v", cfg.Poll.Stats, err)
	}
}

// pollWorkers 0 chooses by transport: libvirtd serves 5 requests of one client at once.
func TestWorkers(t *testing.T) {
	c := Default()
	if c.PollWorkers != 0 || c.Workers() != 4 {
		t.Errorf("default with libvirt: pollWorkers %d, workers %d; want 0, 4", c.PollWorkers, c.Workers())
	}
	c.LibvirtURI = ""
	if c.Workers() != 16 {
		t.Errorf("sockets only: %d workers, want 16", c.Workers())
	}
	c.PollWorkers = 7
	if c.Workers() != 7 {
		t.Errorf("explicit: %d workers, want 7", c.Workers())
	}
}
