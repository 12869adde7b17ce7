package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

// TestManagerSmoke runs the real manager (run, as main calls it) against a real apiserver with
// leader election on: it becomes ready, takes the Lease, schedules a command, and stops cleanly
// on SIGTERM.
func TestManagerSmoke(t *testing.T) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	kcPath, err := env.WriteKubeconfig(t.TempDir(), "smoke")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kcPath)

	probe := freeAddr(t)
	done := make(chan error, 1)
	go func() {
		done <- run(options{metricsAddr: "0", probeAddr: probe, leaderElect: true, leaderElectNamespace: "default",
			statusGCInterval: time.Minute, commandDefaultTTL: time.Hour})
	}()

	ctx := context.Background()
	c := env.Client
	NewWithT(t).Eventually(func() error {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}).WithTimeout(30*time.Second).Should(Succeed(), "readyz answers 200")
	NewWithT(t).Eventually(func() error {
		lease := &coordinationv1.Lease{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "guestagent-controller.guestagent.io"}, lease); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	}).WithTimeout(30*time.Second).Should(Succeed(), "the leader election Lease is held")

	if err := c.Create(ctx, testenv.Node("smoke-node")); err != nil {
		t.Fatal(err)
	}
	gas := &gav1.GuestAgentStatus{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vm-smoke", Labels: map[string]string{gav1.LabelNode: "smoke-node"}},
		Spec:       gav1.GuestAgentStatusSpec{DomainName: "vm smoke", DomainUUID: "0123abcd-0000-4000-8000-000000000001", NodeName: "smoke-node"},
	}
	if err := c.Create(ctx, gas); err != nil {
		t.Fatal(err)
	}
	cmd := &gav1.GuestAgentCommand{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ping-smoke"},
		Spec:       gav1.GuestAgentCommandSpec{Target: gas.Name, Action: gav1.ActionPing},
	}
	if err := c.Create(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(cmd), cmd); err != nil {
			return err
		}
		if cmd.Status.Phase != gav1.PhaseScheduled {
			return fmt.Errorf("phase %q", cmd.Status.Phase)
		}
		return nil
	}).WithTimeout(30*time.Second).Should(Succeed(), "the command is scheduled")

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("manager exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("manager did not stop on SIGTERM")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
