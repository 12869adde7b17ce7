// Package cluster installs the product the way users do and checks it on a real single-node
// Kubernetes cluster (hack/cluster.sh: kubelet, containerd, kube-proxy, controller-manager,
// scheduler): the images built by hack/images.sh, the Helm chart (and, in a second round, the
// kustomize manifests), agentd as a DaemonSet pod reaching the host's real libvirtd and its TCG
// guests (Debian's qemu-ga; one guest with the oVirt agent). Everything is asserted through the API.
// Run it with `make test-cluster` (root); it never skips.
package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

const (
	ns      = "guestagent-system"
	release = "ga"
	gBoth   = "cl-both" // qemu-ga + oVirt agent
	gQGA    = "cl-qga"  // qemu-ga only
	// fullname of the chart's objects for release "ga"
	fullname = "ga-guestagent-operator"
	leaseID  = "guestagent-controller.guestagent.io"
)

var (
	root     = testenv.RepoRoot()
	node     = os.Getenv("CLUSTER_NODE")
	kubecfg  = os.Getenv("KUBECONFIG")
	bin      = filepath.Join(root, "bin")
	k8sBin   = os.Getenv("CLUSTER_BIN")
	cl       client.Client
	scheme   = runtime.NewScheme()
	ctx      = context.Background()
	guestEnv []string
)

func logf(format string, a ...any) { fmt.Printf("cluster: "+format+"\n", a...) }

func TestMain(m *testing.M) {
	code, err := mainErr(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster test setup:", err)
		code = 1
	}
	os.Exit(code)
}

func mainErr(m *testing.M) (int, error) {
	if node == "" || kubecfg == "" || k8sBin == "" {
		return 1, fmt.Errorf("KUBECONFIG, CLUSTER_NODE and CLUSTER_BIN are not set: run `make test-cluster` (hack/test-cluster.sh)")
	}
	_ = clientgoscheme.AddToScheme(scheme)
	_ = gav1.AddToScheme(scheme)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubecfg)
	if err != nil {
		return 1, err
	}
	if cl, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return 1, err
	}
	work, err := os.MkdirTemp("", "guestagent-cluster-test")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(work)
	guestEnv = []string{"QGA_ENV=" + filepath.Join(work, "guest"), "LIBVIRT_DEFAULT_URI=qemu:///system",
		"OGA_GUEST_BIN=" + filepath.Join(bin, "oga-guest")}
	if out, err := run(guestEnv, "bash", "hack/libvirt-env.sh"); err != nil {
		return 1, fmt.Errorf("libvirt-env: %v\n%s", err, out)
	}
	defer func() {
		for _, g := range []string{gBoth, gQGA} {
			_, _ = run(guestEnv, "bash", "hack/guest.sh", "down", g)
		}
	}()
	logf("booting guests %s and %s", gBoth, gQGA)
	errs := make(chan error, 2)
	go func() { errs <- boot(gBoth, "WITH_OGA=1") }()
	go func() { errs <- boot(gQGA) }()
	for range 2 {
		if err := <-errs; err != nil {
			return 1, err
		}
	}
	return m.Run(), nil
}

func boot(name string, env ...string) error {
	out, err := run(append(guestEnv, env...), "bash", "hack/guest.sh", "up", name)
	if err != nil {
		return fmt.Errorf("guest %s: %v\n%s", name, err, out)
	}
	return nil
}

// run runs a command in the repository root and returns its standard output; standard error is
// only part of the error (tools print warnings there that are no part of their answer).
func run(env []string, name string, args ...string) (string, error) {
	return runIn(env, nil, name, args...)
}

func runIn(env []string, stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func kubectl(g Gomega, args ...string) string {
	out, err := run(nil, filepath.Join(k8sBin, "kubectl"), args...)
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return out
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(nil, filepath.Join(bin, "helm"), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// statusOf returns the GuestAgentStatus of a libvirt domain in namespace nsName, or nil.
func statusOf(g Gomega, nsName, domain string) *gav1.GuestAgentStatus {
	var list gav1.GuestAgentStatusList
	g.ExpectWithOffset(1, cl.List(ctx, &list, client.InNamespace(nsName))).To(Succeed())
	for i := range list.Items {
		if list.Items[i].Spec.DomainName == domain {
			return &list.Items[i]
		}
	}
	return nil
}

func condition(conds []metav1.Condition, t string) metav1.ConditionStatus {
	for _, c := range conds {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// command creates a GuestAgentCommand and waits for its terminal phase.
func command(t *testing.T, name, target string, spec gav1.GuestAgentCommandSpec) *gav1.GuestAgentCommand {
	t.Helper()
	g := NewWithT(t)
	spec.Target = target
	cmd := &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	g.Expect(cl.Create(ctx, cmd)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(cl.Get(ctx, client.ObjectKeyFromObject(cmd), cmd)).To(Succeed())
		g.Expect(cmd.Status.Phase.IsTerminal()).To(BeTrue(), "phase %q", cmd.Status.Phase)
	}).WithTimeout(90 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	return cmd
}

// eventReasons lists the reasons of the Events about an object, in order.
func eventReasons(g Gomega, name string) []string {
	var evs corev1.EventList
	g.ExpectWithOffset(1, cl.List(ctx, &evs, client.InNamespace(ns),
		client.MatchingFields{"involvedObject.name": name})).To(Succeed())
	var r []string
	for _, e := range evs.Items {
		for range max(e.Count, 1) {
			r = append(r, e.Reason)
		}
	}
	return r
}

func podsOf(g Gomega, component string) []corev1.Pod {
	var pods corev1.PodList
	g.ExpectWithOffset(1, cl.List(ctx, &pods, client.InNamespace(ns),
		client.MatchingLabels{"app.kubernetes.io/component": component})).To(Succeed())
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

// readyPods waits until exactly n pods of component are Running and Ready, and returns them.
func readyPods(t *testing.T, component string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	NewWithT(t).Eventually(func(g Gomega) {
		pods = podsOf(g, component)
		g.Expect(pods).To(HaveLen(n))
		for _, p := range pods {
			g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning), "pod %s", p.Name)
			g.Expect(podReady(p)).To(BeTrue(), "pod %s not Ready", p.Name)
		}
	}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
	return pods
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func restarts(p corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

func leaseHolder(g Gomega) string {
	var l coordinationv1.Lease
	g.ExpectWithOffset(1, cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: leaseID}, &l)).To(Succeed())
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func daemonSet(g Gomega, name string) *appsv1.DaemonSet {
	var ds appsv1.DaemonSet
	g.ExpectWithOffset(1, cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ds)).To(Succeed())
	return &ds
}
