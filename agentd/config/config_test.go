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
		"unknown field": "libvirtUri: x\n",
		"bad duration":  "poll:\n  users: often\n",
		"too short":     "poll:\n  users: 10ms\n",
		"bad namespace": "defaultNamespace: Not_A_Namespace\n",
		"bad workers":   "pollWorkers: 0\n",
		"bad percent":   "memoryChangePercent: 101\n",
		"bad addr":      "metricsAddr: nonsense\n",
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
