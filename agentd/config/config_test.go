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
		"bad workers":     "pollWorkers: 0\n",
		"bad percent":     "memoryChangePercent: 101\n",
		"bad addr":        "metricsAddr: nonsense\n",
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
	c.PollWorkers = 0
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
