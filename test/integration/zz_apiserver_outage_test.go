package integration

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/service/servicefake"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// TestAPIServerOutageUnderAgentd freezes the real kube-apiserver (SIGSTOP: it stops answering,
// connections hang) while agentd runs, changes the guest meanwhile, and thaws it: the latest state
// is written (nothing lost), one object per domain, and a command afterwards is delivered exactly
// once. (A stop/start of envtest's apiserver regenerates its CA, so a freeze is what can be done
// with the same certificates. The file name sorts last: the other tests run before the outage.)
func TestAPIServerOutageUnderAgentd(t *testing.T) {
	ctx := context.Background()
	d := withQGA(domain("dddddddd-0000-4000-8000-000000000001", "outage"))
	q := servicefake.NewQGA()
	q.Set(d.UUID, debianQGA(), qgaUp("7.2.22"))
	n := startNode(t, "node-a", q, d)
	eventually(t, 20*time.Second, func() error { _, err := getGAS(ctx, defaultNS, d.UUID); return err })

	pid := apiserverPID(t)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer thaw()
	info := debianQGA()
	info.Hostname = &guest.Hostname{Name: "renamed-during-outage"}
	q.Set(d.UUID, info, qgaUp("7.2.22"))
	time.Sleep(5 * time.Second)
	thaw()
	t1 := time.Now()
	eventually(t, 120*time.Second, func() error {
		gas, err := getGAS(ctx, defaultNS, d.UUID)
		if err != nil {
			return err
		}
		if gas.Status.Hostname != "renamed-during-outage" {
			return fmt.Errorf("hostname %q: the change made during the outage is not written yet", gas.Status.Hostname)
		}
		return nil
	})
	t.Logf("the change made during a 5 s outage was written %s after the apiserver came back",
		time.Since(t1).Round(time.Millisecond))

	got := run(t, newCmd(defaultNS, "after-outage", mustName(t, d.UUID), gav1.ActionPing))
	expect(t, got, gav1.PhaseSucceeded, gav1.ReasonCompleted, gav1.AgentQemu)
	pings := 0
	for _, c := range n.qga.Calls() {
		if c == "ping "+d.UUID {
			pings++
		}
	}
	if pings != 1 {
		t.Fatalf("%d pings reached the guest, want 1", pings)
	}
}

// apiserverPID finds this test's kube-apiserver by its secure port.
func apiserverPID(t *testing.T) int {
	t.Helper()
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	want := "--secure-port=" + u.Port()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "kube-apiserver") {
			continue
		}
		for _, arg := range strings.Split(string(b), "\x00") {
			if arg == want {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				return pid
			}
		}
	}
	t.Fatalf("kube-apiserver with %s not found", want)
	return 0
}

func mustName(t *testing.T, uuid string) string {
	t.Helper()
	gas, err := getGAS(context.Background(), defaultNS, uuid)
	if err != nil {
		t.Fatal(err)
	}
	return gas.Name
}
