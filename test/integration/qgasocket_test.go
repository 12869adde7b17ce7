package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"

	"guestagent.io/operator/agentd/app"
	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/qgasock"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/qgatest"
	"guestagent.io/operator/internal/testenv"
)

// TestQGASocketsOnlyNode runs agentd in sockets-only mode (no libvirt at all), assembled exactly
// as cmd/agentd does it (app.NewNodeDeps + app.Build), against Debian's real qemu-ga on host
// sockets: a directory socket and a configured one publish the host's real data with the
// channel Connected; a hostile peer in the same directory hurts neither; agent actions work,
// the libvirt-only ACPI fallback is refused clearly; a stopped agent is Disconnected, a removed
// socket file deletes its GuestAgentStatus.
func TestQGASocketsOnlyNode(t *testing.T) {
	qgatest.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	const (
		nodeName = "node-sockets"
		uDir     = "5a000000-0000-4000-8000-00000000000a"
		uListed  = "5a000000-0000-4000-8000-00000000000b"
		uEvil    = "5a000000-0000-4000-8000-00000000000e"
	)
	if err := env.Client.Create(ctx, testenv.Node(nodeName)); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "qgas") // short: unix socket paths are limited to 107 bytes
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	listedDir := filepath.Join(dir, "listed")
	sockDir := filepath.Join(dir, "run")
	g.Expect(os.Mkdir(listedDir, 0o700)).To(Succeed())
	g.Expect(os.Mkdir(sockDir, 0o700)).To(Succeed())
	vm := qgatest.Start(t, filepath.Join(sockDir, "vm-a_"+uDir+".sock"))
	listed := qgatest.Start(t, filepath.Join(listedDir, "qga.sock"))
	qgatest.Hostile(t, filepath.Join(sockDir, "evil_"+uEvil+".sock"))

	cfg := config.Default()
	cfg.NodeName = nodeName
	cfg.DefaultNamespace = defaultNS
	cfg.MetricsAddr, cfg.HealthAddr = "0", "0"
	cfg.PublishMinInterval.Duration = 20 * time.Millisecond
	cfg.LibvirtURI = ""
	cfg.QGASockets = config.QGASockets{Directory: sockDir, Interval: config.Duration{Duration: 200 * time.Millisecond},
		Domains: []config.SocketDomain{{Name: "listed vm", UUID: strings.ToUpper(uListed), Socket: listed.Socket}}}
	g.Expect(cfg.Validate()).To(Succeed())
	deps, closeAgents, err := app.NewNodeDeps(cfg, testLogger(t).WithName("deps"))
	g.Expect(err).NotTo(HaveOccurred())
	deps.Controller = crconfig.Controller{SkipNameValidation: ptr.To(true)}
	deps.Registry = prometheus.NewRegistry()
	a, err := app.Build(cfg, env.Config, env.Scheme, deps, testLogger(t).WithName(nodeName))
	g.Expect(err).NotTo(HaveOccurred())
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.Start(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agentd: %v", err)
		}
		closeAgents()
	})

	hostname, _ := os.Hostname()
	published := func(uuid string) func() error {
		return func() error {
			gas, err := getGAS(ctx, defaultNS, uuid)
			if err != nil {
				return err
			}
			st := gas.Status
			switch {
			case st.QemuAgent == nil || st.QemuAgent.ChannelState != gav1.ChannelConnected:
				return fmt.Errorf("qemuAgent %+v", st.QemuAgent)
			case st.Hostname != hostname:
				return fmt.Errorf("hostname %q, want %q", st.Hostname, hostname)
			case st.OS == nil || st.OS.ID == "" || st.OS.Type != "Linux":
				return fmt.Errorf("os %+v", st.OS)
			case st.Domain == nil || st.Domain.State != "Running" || st.Domain.Reason != qgasock.StateReason:
				return fmt.Errorf("domain %+v", st.Domain)
			case cond(gas, "QemuAgentConnected") != metav1.ConditionTrue:
				return fmt.Errorf("conditions %+v", st.Conditions)
			case gas.Spec.NodeName != nodeName:
				return fmt.Errorf("node %q", gas.Spec.NodeName)
			}
			return nil
		}
	}
	g.Eventually(published(uDir)).WithTimeout(30 * time.Second).Should(Succeed())
	g.Eventually(published(uListed)).WithTimeout(30 * time.Second).Should(Succeed())
	gas, err := getGAS(ctx, defaultNS, uDir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(gas.Spec.DomainName).To(Equal("vm-a"))
	g.Expect(gas.Status.QemuAgent.Version).NotTo(BeEmpty())
	listedGAS, err := getGAS(ctx, defaultNS, uListed)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(listedGAS.Spec.DomainName).To(Equal("listed vm"))
	g.Expect(listedGAS.Spec.DomainUUID).To(Equal(uListed))

	// the hostile peer is a domain whose agent does not answer: Unknown, Disconnected
	g.Eventually(func() error {
		gas, err := getGAS(ctx, defaultNS, uEvil)
		if err != nil {
			return err
		}
		if d := gas.Status.Domain; d == nil || d.State != "Unknown" || d.Reason != qgasock.StateReason {
			return fmt.Errorf("domain %+v", gas.Status.Domain)
		}
		if q := gas.Status.QemuAgent; q == nil || q.ChannelState != gav1.ChannelDisconnected {
			return fmt.Errorf("qemuAgent %+v", q)
		}
		return nil
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// agent actions work; the ACPI fallback (libvirt) is refused with the reason
	ping := run(t, newCmd(defaultNS, "sock-ping", gas.Name, gav1.ActionPing))
	g.Expect(ping.Status.Phase).To(Equal(gav1.PhaseSucceeded), ping.Status.Message)
	g.Expect(ping.Status.Agents).To(Equal([]gav1.AgentType{gav1.AgentQemu}))
	shut := newCmd(defaultNS, "sock-shutdown-acpi", gas.Name, gav1.ActionShutdown)
	shut.Spec.Fallback = gav1.FallbackACPI
	shut = run(t, shut) // guest-shutdown is blocked on the host agent, so the policy goes on to ACPI
	g.Expect(shut.Status.Phase).To(Equal(gav1.PhaseFailed))
	g.Expect(shut.Status.Reason).To(Equal(gav1.ReasonNotShutOff))
	steps := shut.Status.PowerSteps
	g.Expect(steps).NotTo(BeEmpty())
	last := steps[len(steps)-1]
	g.Expect(last.Method).To(Equal(gav1.PowerACPI))
	g.Expect(last.Result).To(Equal(gav1.StepError))
	g.Expect(last.Message).To(ContainSubstring("ACPI shutdown needs libvirt, and domain vm-a is not run by libvirt"))

	// list form: the agent stops → Disconnected, Unknown; the status stays
	listed.Stop()
	g.Eventually(func() error {
		gas, err := getGAS(ctx, defaultNS, uListed)
		if err != nil {
			return err
		}
		if q := gas.Status.QemuAgent; q == nil || q.ChannelState != gav1.ChannelDisconnected || gas.Status.Domain.State != "Unknown" {
			return fmt.Errorf("qemuAgent %+v domain %+v", q, gas.Status.Domain)
		}
		if cond(gas, "QemuAgentConnected") != metav1.ConditionFalse {
			return fmt.Errorf("conditions %+v", gas.Status.Conditions)
		}
		return nil
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// directory form: the socket file goes → the domain and its status go
	vm.Stop()
	g.Eventually(func() error {
		_, err := getGAS(ctx, defaultNS, uDir)
		if err == nil || !strings.Contains(err.Error(), "0 GuestAgentStatus objects") {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// TestQGASocketsBesideLibvirt: a node with libvirt (the test:/// driver, in process) and extra
// socket domains. Socket domains publish their agent's data through the socket (qga.Route), the
// libvirt domain is unaffected, and a socket entry with the UUID of a libvirt domain is a
// reported conflict that libvirt wins.
func TestQGASocketsBesideLibvirt(t *testing.T) {
	qgatest.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	const (
		nodeName = "node-both"
		uTest    = "6695eb01-f6a4-8304-79aa-97f2502e193f" // the test:///default driver's domain "test"
		uExtra   = "5b000000-0000-4000-8000-00000000000c"
	)
	if err := env.Client.Create(ctx, testenv.Node(nodeName)); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "qgas")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	qgatest.Start(t, filepath.Join(dir, "extra_"+uExtra+".sock"))
	dup := qgatest.Start(t, filepath.Join(dir, "dup.sock"))

	cfg := config.Default()
	cfg.NodeName = nodeName
	cfg.DefaultNamespace = defaultNS
	cfg.MetricsAddr, cfg.HealthAddr = "0", "0"
	cfg.PublishMinInterval.Duration = 20 * time.Millisecond
	cfg.EnableOvirtAgent = false
	cfg.LibvirtURI = "test:///default"
	cfg.QGASockets = config.QGASockets{Directory: dir, Interval: config.Duration{Duration: 200 * time.Millisecond},
		Domains: []config.SocketDomain{{Name: "dup", UUID: uTest, Socket: dup.Socket}}}
	g.Expect(cfg.Validate()).To(Succeed())
	deps, closeAgents, err := app.NewNodeDeps(cfg, testLogger(t).WithName("deps"))
	g.Expect(err).NotTo(HaveOccurred())
	deps.Controller = crconfig.Controller{SkipNameValidation: ptr.To(true)}
	deps.Registry = prometheus.NewRegistry()
	a, err := app.Build(cfg, env.Config, env.Scheme, deps, testLogger(t).WithName(nodeName))
	g.Expect(err).NotTo(HaveOccurred())
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.Start(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agentd: %v", err)
		}
		closeAgents()
	})

	hostname, _ := os.Hostname()
	g.Eventually(func() error {
		gas, err := getGAS(ctx, defaultNS, uExtra)
		if err != nil {
			return err
		}
		if gas.Status.Hostname != hostname || gas.Status.OS == nil || gas.Spec.NodeName != nodeName {
			return fmt.Errorf("status %+v", gas.Status)
		}
		return nil
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Eventually(func() error {
		gas, err := getGAS(ctx, defaultNS, uTest)
		if err != nil {
			return err
		}
		if gas.Spec.DomainName != "test" || gas.Status.Domain == nil || gas.Status.Domain.Reason == qgasock.StateReason {
			return fmt.Errorf("the libvirt domain must win: spec %+v domain %+v", gas.Spec, gas.Status.Domain)
		}
		return nil
	}).WithTimeout(30 * time.Second).Should(Succeed())
	u, ok := deps.Watcher.(*virt.Union)
	g.Expect(ok).To(BeTrue())
	g.Eventually(u.Conflicts).Should(ConsistOf(uTest))
	g.Consistently(func() string {
		gas, err := getGAS(ctx, defaultNS, uTest)
		if err != nil {
			return err.Error()
		}
		return gas.Spec.DomainName
	}).WithTimeout(time.Second).Should(Equal("test"))
	// the socket entry never showed under its own name: libvirt listed the domain first
	gasList := &gav1.GuestAgentStatusList{}
	g.Expect(env.Client.List(ctx, gasList)).To(Succeed())
	for _, o := range gasList.Items {
		g.Expect(o.Spec.DomainName).NotTo(Equal("dup"))
	}
	// the ACPI button still goes to libvirt for libvirt domains (the test driver rejects the
	// ACPI flag) and refuses the socket domain
	err = deps.PowerButton.ACPIShutdown(ctx, uTest)
	g.Expect(err).To(MatchError(ContainSubstring("testDomainShutdownFlags")))
	err = deps.PowerButton.ACPIReboot(ctx, uExtra)
	g.Expect(err).To(MatchError(ContainSubstring("ACPI reboot needs libvirt, and domain extra is not run by libvirt")))
}
