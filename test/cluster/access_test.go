package cluster

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// probeStatus is a status agentd on node n could write; created with a server-side dry run only.
func probeStatus(n string) *gav1.GuestAgentStatus {
	return &gav1.GuestAgentStatus{
		ObjectMeta: metav1.ObjectMeta{Name: "policy-probe-00000001", Namespace: ns,
			Labels: map[string]string{"guestagent.io/node": n, "guestagent.io/domain-uuid": "00000000-0000-4000-8000-000000000001"}},
		Spec: gav1.GuestAgentStatusSpec{DomainName: "policy-probe", DomainUUID: "00000000-0000-4000-8000-000000000001", NodeName: n},
	}
}

// testPolicy checks the ValidatingAdmissionPolicy in the real cluster with the token agentd's pod
// really has (a pod-bound token, which carries the pod's node), and impersonating agentd's
// ServiceAccount without one.
func testPolicy(t *testing.T) {
	g := NewWithT(t)
	sa := fullname + "-agentd"
	pod := podsOf(g, "agentd")[0]
	token := strings.TrimSpace(kubectl(g, "create", "token", sa, "-n", ns, "--bound-object-kind", "Pod",
		"--bound-object-name", pod.Name, "--bound-object-uid", string(pod.UID), "--duration", "10m"))
	admin, err := clientcmd.BuildConfigFromFlags("", kubecfg)
	g.Expect(err).NotTo(HaveOccurred())
	asAgentd := rest.AnonymousClientConfig(admin)
	asAgentd.BearerToken = token
	c, err := client.New(asAgentd, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	dry := client.DryRunAll

	g.Expect(c.Create(ctx, probeStatus(node), dry)).To(Succeed(), "agentd may create a status of its own node")
	err = c.Create(ctx, probeStatus("another-node"), dry)
	g.Expect(err).To(HaveOccurred(), "agentd created a status of another node")
	g.Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("may only write GuestAgentStatus objects of its own node"))

	// An existing status of its own node relabelled to another node: refused too.
	s := statusOf(g, ns, gBoth)
	s.Labels["guestagent.io/node"] = "another-node"
	s.Spec.NodeName = "another-node"
	err = c.Update(ctx, s, dry)
	g.Expect(err).To(HaveOccurred(), "agentd moved its status to another node")

	// Impersonation keeps the user name but has no node binding: every write is refused.
	imp := rest.CopyConfig(admin)
	imp.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa}
	ci, err := client.New(imp, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	err = ci.Create(ctx, probeStatus(node), dry)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("node-bound service account token"))
}

// testMetrics scrapes both components from a pod, at the addresses Prometheus would (the
// endpoints of the Services the ServiceMonitors select), with a ServiceAccount bound to the
// chart's metrics-reader ClusterRole as docs/metrics.md says; and without a token, which the
// controller's authenticated endpoint refuses.
func testMetrics(t *testing.T) {
	g := NewWithT(t)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "cl-scraper", Namespace: ns}}
	g.Expect(cl.Create(ctx, sa)).To(Succeed())
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "cl-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: fullname + "-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: ns}},
	}
	g.Expect(cl.Create(ctx, crb)).To(Succeed())
	t.Cleanup(func() { _ = cl.Delete(ctx, crb); _ = cl.Delete(ctx, sa) })

	manager := endpoints(g, fullname+"-controller-metrics", "https", "https")
	agentd := endpoints(g, fullname+"-agentd-metrics", "metrics", "http")
	g.Expect(manager).To(HaveLen(2), "one endpoint per controller replica")
	g.Expect(agentd).To(HaveLen(1))

	out := probe(t, "cl-probe-manager", "go_goroutines", manager...)
	for _, u := range manager {
		g.Expect(out).To(ContainSubstring(u+" 200"), "manager scrape")
	}
	g.Expect(out).To(ContainSubstring("go_goroutines"))
	out = probe(t, "cl-probe-agentd", "guestagent_agentd_", agentd...)
	g.Expect(out).To(ContainSubstring(agentd[0] + " 200"))
	g.Expect(out).To(ContainSubstring("guestagent_agentd_libvirt_connected"))
	out = probe(t, "cl-probe-anonymous", "", append([]string{"-no-token"}, manager[0])...)
	g.Expect(out).To(ContainSubstring(manager[0] + " 401"))
}

// endpoints lists scheme://IP:port/metrics of the ready endpoints of a Service's port.
func endpoints(g Gomega, svc, portName, scheme string) []string {
	var urls []string
	g.Eventually(func(g Gomega) {
		var slices discoveryv1.EndpointSliceList
		g.Expect(cl.List(ctx, &slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: svc})).To(Succeed())
		urls = nil
		for _, s := range slices.Items {
			for _, p := range s.Ports {
				if p.Name == nil || *p.Name != portName {
					continue
				}
				for _, e := range s.Endpoints {
					if e.Conditions.Ready != nil && *e.Conditions.Ready {
						urls = append(urls, scheme+"://"+e.Addresses[0]+":"+itoa(*p.Port)+"/metrics")
					}
				}
			}
		}
		g.Expect(urls).NotTo(BeEmpty(), "endpoints of %s", svc)
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
	return urls
}

// probe runs the probe image as a pod with the scraper ServiceAccount and returns its log.
func probe(t *testing.T, name, match string, args ...string) string {
	t.Helper()
	g := NewWithT(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			ServiceAccountName: "cl-scraper",
			RestartPolicy:      corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "probe", Image: "guestagent.local/probe:1", ImagePullPolicy: corev1.PullNever,
				Args: append([]string{"-match", match}, args...),
			}},
		},
	}
	g.Expect(cl.Create(ctx, pod)).To(Succeed())
	t.Cleanup(func() { _ = cl.Delete(ctx, pod) })
	g.Eventually(func(g Gomega) {
		g.Expect(cl.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.Status.Phase).To(BeElementOf(corev1.PodSucceeded, corev1.PodFailed))
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	logs := kubectl(g, "logs", "-n", ns, name) // apiserver → kubelet, by InternalIP
	g.Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded), "probe failed:\n%s", logs)
	return logs
}
