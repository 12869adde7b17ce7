package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga/ogafake"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// TestAPIServerOutageUnderAgentd freezes the real kube-apiserver (SIGSTOP: it stops answering,
// connections hang) while agentd runs, changes the guest meanwhile, and thaws it: the latest state
// is written (nothing lost), one object per domain, and a command afterwards is delivered exactly
// once. TestAPIServerRestartUnderAgentd below stops the process instead (connections refused).
// Both leave a serving kube-apiserver behind, so the tests of the package run in any order.
func TestAPIServerOutageUnderAgentd(t *testing.T) {
	ctx := context.Background()
	d := withQGA(domain("dddddddd-0000-4000-8000-000000000001", "outage"))
	q := servicefake.NewQGA()
	q.Set(d.UUID, debianQGA(), qgaUp("7.2.22"))
	n := startNode(t, "node-a", q, d)
	NewWithT(t).Eventually(func() error { _, err := getGAS(ctx, defaultNS, d.UUID); return err }).WithTimeout(20 * time.Second).Should(Succeed())

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
	NewWithT(t).Eventually(func() error {
		gas, err := getGAS(ctx, defaultNS, d.UUID)
		if err != nil {
			return err
		}
		if gas.Status.Hostname != "renamed-during-outage" {
			return fmt.Errorf("hostname %q: the change made during the outage is not written yet", gas.Status.Hostname)
		}
		return nil
	}).WithTimeout(120 * time.Second).Should(Succeed())
	t.Logf("the change made during a 5 s outage was written %s after the apiserver came back",
		time.Since(t1).Round(time.Millisecond))

	got := run(t, newCmd(defaultNS, "after-outage", mustName(t, d.UUID), gav1.ActionPing))
	expect(t, got, gav1.PhaseSucceeded, gav1.ReasonCompleted, gav1.AgentQemu)
	if k := n.qgaCalls("ping " + d.UUID); k != 1 {
		t.Fatalf("%d pings reached the guest, want 1", k)
	}
}

// TestAPIServerRestartUnderAgentd stops the real kube-apiserver (SIGTERM; etcd keeps running, as
// in a control-plane upgrade) while agentd runs and a hook runs in a guest, and starts it again
// with the same command line and certificates. Meanwhile the hook completes in the guest, one
// guest's data changes, one domain vanishes and one appears. Afterwards: the hook's outcome is
// written (it was kept and retried, not lost or left Running), it reached the guest once, the
// change is written, the vanished domain's object is deleted, the new one's created, and a
// command sent afterwards is delivered once.
func TestAPIServerRestartUnderAgentd(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	var inHook atomic.Int32
	g, sock := ogaGuest(t, ogafake.Config{RunHooks: func(ctx context.Context, event string) bool {
		if event == string(gav1.HookAfterHibernation) {
			inHook.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return true
	}}, nil)
	kept := withQGA(domain("eeeeeeee-0000-4000-8000-000000000001", "restart-kept"))
	gone := withQGA(domain("eeeeeeee-0000-4000-8000-000000000002", "restart-gone"))
	born := withQGA(domain("eeeeeeee-0000-4000-8000-000000000003", "restart-born"))
	hooked := withOGA(domain("eeeeeeee-0000-4000-8000-000000000004", "restart-hook"), sock)
	q := servicefake.NewQGA()
	for _, d := range []virt.Domain{kept, gone, born} {
		q.Set(d.UUID, debianQGA(), qgaUp("7.2.22"))
	}
	n := startNode(t, "node-a", q, kept, gone, hooked)
	for _, d := range []virt.Domain{kept, gone, hooked} {
		NewWithT(t).Eventually(func() error { _, err := getGAS(ctx, defaultNS, d.UUID); return err }).WithTimeout(20 * time.Second).Should(Succeed())
	}
	NewWithT(t).Eventually(func() error { // hooks need the negotiated API version 3
		gas, err := getGAS(ctx, defaultNS, hooked.UUID)
		if err == nil && (gas.Status.OvirtAgent == nil || ptr.Deref(gas.Status.OvirtAgent.APIVersion, 0) != 3) {
			err = fmt.Errorf("oVirt agent API version not negotiated yet")
		}
		return err
	}).WithTimeout(20 * time.Second).Should(Succeed())
	goneName := mustName(t, gone.UUID)

	hook := newCmd(defaultNS, "hook-across-restart", mustName(t, hooked.UUID), gav1.ActionHook)
	hook.Spec.Hook = &gav1.HookParams{Name: gav1.HookAfterHibernation, TimeoutSeconds: ptr.To[int32](120)}
	hook.Spec.DeadlineSeconds = ptr.To[int32](300)
	if err := env.Client.Create(ctx, hook); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() error {
		if inHook.Load() != 1 {
			return fmt.Errorf("hook not running in the guest yet")
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())

	restart := stopAPIServer(t)
	t0 := time.Now()
	info := debianQGA()
	info.Hostname = &guest.Hostname{Name: "renamed-while-apiserver-down"}
	q.Set(kept.UUID, info, qgaUp("7.2.22"))
	n.watcher.Remove(gone.UUID, virt.LifecycleUndefined)
	n.watcher.Set(born, virt.LifecycleDefined)
	close(release) // the guest finishes the hook: its outcome cannot be written now
	time.Sleep(5 * time.Second)
	restart()
	down := time.Since(t0) // until custom resources are served again
	t1 := time.Now()

	got := waitTerminal(t, hook)
	expect(t, got, gav1.PhaseSucceeded, gav1.ReasonCompleted, gav1.AgentOvirt)
	tHook := time.Since(t1)
	NewWithT(t).Eventually(func() error {
		gas, err := getGAS(ctx, defaultNS, kept.UUID)
		if err != nil {
			return err
		}
		if gas.Status.Hostname != "renamed-while-apiserver-down" {
			return fmt.Errorf("hostname %q: the change made while the apiserver was down is not written", gas.Status.Hostname)
		}
		return nil
	}).WithTimeout(60 * time.Second).Should(Succeed())
	tData := time.Since(t1)
	NewWithT(t).Eventually(func() error {
		if _, err := getGAS(ctx, defaultNS, born.UUID); err != nil {
			return err
		}
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: defaultNS, Name: goneName}, &gav1.GuestAgentStatus{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("the vanished domain's object is still there (%v)", err)
		}
		return nil
	}).WithTimeout(60 * time.Second).Should(Succeed())
	t.Logf("apiserver down %s (until custom resources are served); then: hook outcome in %s, data change in %s",
		down.Round(time.Millisecond), tHook.Round(time.Millisecond), tData.Round(time.Millisecond))

	if k := received(g, "lifecycle-event"); k != 1 {
		t.Fatalf("the hook reached the guest %d times, want 1", k)
	}
	ping := run(t, newCmd(defaultNS, "ping-after-restart", mustName(t, kept.UUID), gav1.ActionPing))
	expect(t, ping, gav1.PhaseSucceeded, gav1.ReasonCompleted, gav1.AgentQemu)
	if k := n.qgaCalls("ping " + kept.UUID); k != 1 {
		t.Fatalf("%d pings reached the guest, want 1", k)
	}
	NewWithT(t).Consistently(func() int { return received(g, "lifecycle-event") }).WithTimeout(2*time.Second).
		Should(Equal(1), "deliveries of the hook to the guest")
}

// restartedAPIServer is the kube-apiserver started again by stopAPIServer's restart, if any: it
// serves the following tests and TestMain stops it at the end (envtest's Stop finds its own
// process gone).
var restartedAPIServer *exec.Cmd

// stopRestartedAPIServer stops the kube-apiserver started by a restart, if any.
func stopRestartedAPIServer() {
	if restartedAPIServer == nil {
		return
	}
	_ = restartedAPIServer.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = restartedAPIServer.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = restartedAPIServer.Process.Kill()
		<-done
	}
}

// stopAPIServer stops the suite's kube-apiserver (SIGTERM, then waits until its port refuses
// connections) and returns a function that starts it again with the same command line,
// environment and working directory (so the same certificates) and waits until it serves custom
// resources again. The test must call restart (the restarted server serves the later tests).
func stopAPIServer(t *testing.T) (restart func()) {
	t.Helper()
	pid := apiserverPID(t)
	proc := fmt.Sprintf("/proc/%d/", pid)
	cmdline, err1 := os.ReadFile(proc + "cmdline")
	environ, err2 := os.ReadFile(proc + "environ")
	cwd, err3 := os.Readlink(proc + "cwd")
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() error {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			return nil
		}
		_ = c.Close()
		return fmt.Errorf("kube-apiserver still accepts connections")
	}).WithTimeout(60 * time.Second).Should(Succeed())
	restarted := false
	restart = func() {
		if restarted {
			return
		}
		restarted = true
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = strings.Split(strings.TrimRight(string(environ), "\x00"), "\x00")
		cmd.Dir = cwd
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		restartedAPIServer = cmd
		NewWithT(t).Eventually(func() error {
			return env.Client.List(context.Background(), &corev1.NamespaceList{})
		}).WithTimeout(60 * time.Second).Should(Succeed())
		// custom resources are served a few seconds later (requests wait meanwhile)
		NewWithT(t).Eventually(func() error {
			return env.Client.List(context.Background(), &gav1.GuestAgentCommandList{})
		}).WithTimeout(60 * time.Second).Should(Succeed())
	}
	t.Cleanup(restart) // also when the test fails before it restarts the server
	return restart
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
