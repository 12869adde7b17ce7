package cluster

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// TestInstall installs the product with Helm, checks it end to end, upgrades and uninstalls it,
// then does the same with the kustomize manifests of config/default. One test, two rounds in
// order: each round starts from what the previous one left (the CRDs the chart keeps).
func TestInstall(t *testing.T) {
	t.Run("helm", testHelm)
	t.Run("kustomize", testKustomize)
}

func testHelm(t *testing.T) {
	g := NewWithT(t)
	// Stand-ins for the Prometheus Operator's CRDs, so the ServiceMonitors and the PrometheusRule
	// the chart renders are applied too.
	for _, f := range []string{"servicemonitor-crd.yaml", "prometheusrule-crd.yaml"} {
		kubectl(g, "apply", "--server-side", "-f", filepath.Join(root, "test/install/testdata", f))
	}
	kubectl(g, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	values := []string{
		"--set", "image.tag=dev", "--set", "image.pullPolicy=Never",
		"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true",
		"--set", "dashboards.enabled=true",
		// quick guest data, so the restart and upgrade checks see polls happen
		"--set", "agentd.config.poll.users=5s",
	}
	start := time.Now()
	helm(t, append([]string{"install", release, "charts/guestagent-operator", "--namespace", ns, "--create-namespace"}, values...)...)

	t.Run("every rendered object exists", func(t *testing.T) {
		manifest := helm(t, "get", "manifest", release, "--namespace", ns)
		out, err := runIn(nil, []byte(manifest), filepath.Join(k8sBin, "kubectl"), "get", "-f", "-", "-o", "name")
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		objs := strings.Fields(out)
		logf("helm release %s: %d objects rendered and present", release, len(objs))
		NewWithT(t).Expect(len(objs)).To(Equal(strings.Count(manifest, "\nkind: ")+boolInt(strings.HasPrefix(manifest, "kind: "))),
			"objects found vs rendered")
	})

	var agentdPod corev1.Pod
	t.Run("pods running and ready", func(t *testing.T) {
		ctrl := readyPods(t, "controller", 2)
		agentdPod = readyPods(t, "agentd", 1)[0]
		logf("pods Ready %.1fs after helm install", time.Since(start).Seconds())
		for _, p := range append(ctrl, agentdPod) {
			NewWithT(t).Expect(restarts(p)).To(BeZero(), "pod %s restarted", p.Name)
			c := p.Spec.Containers[0]
			NewWithT(t).Expect(c.LivenessProbe).NotTo(BeNil(), "pod %s has no liveness probe", p.Name)
			NewWithT(t).Expect(c.ReadinessProbe).NotTo(BeNil(), "pod %s has no readiness probe", p.Name)
		}
		// The kubelet really ran both probes of every pod, and they succeeded.
		NewWithT(t).Eventually(func(g Gomega) {
			metrics := kubectl(g, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/metrics/probes")
			for _, p := range append(ctrl, agentdPod) {
				for _, kind := range []string{"Liveness", "Readiness"} {
					g.Expect(probeCount(metrics, p.Name, kind, "successful")).To(BeNumerically(">", 0), "%s probe of %s", kind, p.Name)
					g.Expect(probeCount(metrics, p.Name, kind, "failed")).To(BeZero(), "%s probe of %s", kind, p.Name)
				}
			}
		}).WithTimeout(90 * time.Second).WithPolling(2 * time.Second).Should(Succeed())
	})

	t.Run("one status per guest, written by the agentd pod", func(t *testing.T) {
		NewWithT(t).Eventually(func(g Gomega) {
			for _, d := range []string{gBoth, gQGA} {
				s := statusOf(g, ns, d)
				g.Expect(s).NotTo(BeNil(), "status of %s", d)
				g.Expect(s.Spec.NodeName).To(Equal(node), "node name from the downward API")
				g.Expect(s.Labels).To(HaveKeyWithValue("guestagent.io/node", node))
				g.Expect(condition(s.Status.Conditions, gav1.ConditionAgentResponsive)).To(Equal(metav1.ConditionTrue), "%s responsive", d)
				g.Expect(condition(s.Status.Conditions, gav1.ConditionQemuAgentConnected)).To(Equal(metav1.ConditionTrue), "%s QGA", d)
			}
			both := statusOf(g, ns, gBoth)
			g.Expect(condition(both.Status.Conditions, gav1.ConditionOvirtAgentConnected)).To(Equal(metav1.ConditionTrue), "oVirt agent over the pod's hostPath channel directory")
		}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
		// Nothing else writes statuses in this cluster: the writer is the pod's ServiceAccount.
		var list gav1.GuestAgentStatusList
		NewWithT(t).Expect(cl.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		for _, s := range list.Items {
			NewWithT(t).Expect(managers(s.ManagedFields)).To(ContainElement(ContainSubstring("agentd")), "status %s", s.Name)
		}
	})

	t.Run("commands reach the guests", func(t *testing.T) {
		g := NewWithT(t)
		qga, both := statusOf(g, ns, gQGA).Name, statusOf(g, ns, gBoth).Name
		ping := command(t, "cl-ping", qga, gav1.GuestAgentCommandSpec{Action: gav1.ActionPing, Agent: gav1.AgentBoth})
		g.Expect(ping.Status.Phase).To(Equal(gav1.PhaseSucceeded), "%+v", ping.Status)
		lock := command(t, "cl-lock", both, gav1.GuestAgentCommandSpec{Action: gav1.ActionLockScreen})
		g.Expect(lock.Status.Phase).To(Equal(gav1.PhaseSucceeded), "%+v", lock.Status)
		g.Eventually(func(g Gomega) {
			out := kubectl(g, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=cl-lock", "-o", "custom-columns=REASON:.reason", "--no-headers")
			g.Expect(strings.Fields(out)).To(ContainElement("Succeeded"))
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})

	t.Run("leader election with two replicas", func(t *testing.T) {
		g := NewWithT(t)
		var leader string
		g.Eventually(func(g Gomega) { leader = leaseHolder(g); g.Expect(leader).NotTo(BeEmpty()) }).
			WithTimeout(time.Minute).Should(Succeed())
		pods := podsOf(g, "controller")
		var leaderPod string
		for _, p := range pods {
			if strings.HasPrefix(leader, p.Name) {
				leaderPod = p.Name
			}
		}
		g.Expect(leaderPod).NotTo(BeEmpty(), "lease holder %q is none of the controller pods", leader)
		kubectl(g, "delete", "pod", "-n", ns, leaderPod, "--wait=false")
		g.Eventually(func(g Gomega) {
			h := leaseHolder(g)
			g.Expect(h).NotTo(BeEmpty())
			g.Expect(strings.HasPrefix(h, leaderPod)).To(BeFalse(), "still held by the deleted pod")
		}).WithTimeout(90 * time.Second).WithPolling(time.Second).Should(Succeed())
		logf("leadership moved from %s to %s", leaderPod, leaseHolder(g))
		qga := statusOf(g, ns, gQGA).Name
		cmd := command(t, "cl-ping-after-failover", qga, gav1.GuestAgentCommandSpec{Action: gav1.ActionPing})
		g.Expect(cmd.Status.Phase).To(Equal(gav1.PhaseSucceeded))
		// Executed once: one entry in the guest's history, one Succeeded Event.
		g.Consistently(func(g Gomega) {
			g.Expect(countExecuted(statusOf(g, ns, gQGA), cmd.Name)).To(Equal(1))
			g.Expect(countOf(eventReasons(g, cmd.Name), "Succeeded")).To(Equal(1))
		}).WithTimeout(5 * time.Second).WithPolling(time.Second).Should(Succeed())
		readyPods(t, "controller", 2)
	})

	t.Run("agentd pod deleted: restarted, nothing rewritten or re-executed", func(t *testing.T) {
		g := NewWithT(t)
		before := statusVersions(g)
		old := podsOf(g, "agentd")[0]
		kubectl(g, "delete", "pod", "-n", ns, old.Name)
		pod := readyPods(t, "agentd", 1)[0]
		g.Expect(pod.UID).NotTo(Equal(old.UID))
		// The new pod has connected to libvirt and polled (agentd is Ready only then); the quiet
		// QGA-only guest's object stays as it was, and no command runs again.
		g.Consistently(func(g Gomega) {
			after := statusVersions(g)
			g.Expect(after[gQGA]).To(Equal(before[gQGA]), "status of the unchanged guest rewritten")
			for _, name := range []string{"cl-ping", "cl-lock", "cl-ping-after-failover"} {
				g.Expect(countOf(eventReasons(g, name), "Succeeded")).To(Equal(1), "command %s", name)
			}
		}).WithTimeout(15 * time.Second).WithPolling(time.Second).Should(Succeed())
	})

	t.Run("admission policy binds agentd to its node", func(t *testing.T) { testPolicy(t) })
	t.Run("metrics scraped from inside the cluster", func(t *testing.T) { testMetrics(t) })

	t.Run("helm upgrade rolls agentd and keeps the statuses", func(t *testing.T) {
		g := NewWithT(t)
		uids := statusUIDs(g)
		old := podsOf(g, "agentd")[0]
		gen := daemonSet(g, fullname+"-agentd").Generation
		helm(t, append([]string{"upgrade", release, "charts/guestagent-operator", "--namespace", ns}, append(values, "--set", "agentd.config.poll.users=7s")...)...)
		g.Eventually(func(g Gomega) {
			ds := daemonSet(g, fullname+"-agentd")
			g.Expect(ds.Generation).To(BeNumerically(">", gen))
			g.Expect(ds.Status.ObservedGeneration).To(Equal(ds.Generation))
			g.Expect(ds.Status.UpdatedNumberScheduled).To(Equal(int32(1)))
			g.Expect(ds.Status.NumberReady).To(Equal(int32(1)))
		}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
		pod := readyPods(t, "agentd", 1)[0]
		g.Expect(pod.UID).NotTo(Equal(old.UID), "the DaemonSet's pod was not replaced")
		g.Consistently(func(g Gomega) { g.Expect(statusUIDs(g)).To(Equal(uids)) }).
			WithTimeout(5 * time.Second).WithPolling(time.Second).Should(Succeed())
	})

	t.Run("shutdown of a guest", func(t *testing.T) {
		g := NewWithT(t)
		qga := statusOf(g, ns, gQGA).Name
		cmd := command(t, "cl-shutdown", qga, gav1.GuestAgentCommandSpec{Action: gav1.ActionShutdown})
		g.Expect(cmd.Status.Phase).To(Equal(gav1.PhaseSucceeded), "%+v", cmd.Status)
		g.Eventually(func(g Gomega) {
			out, err := run(guestEnv, "virsh", "-q", "domstate", gQGA)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(strings.TrimSpace(out)).To(Equal("shut off"))
		}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	})

	t.Run("helm uninstall removes what it installed", func(t *testing.T) {
		g := NewWithT(t)
		manifest := helm(t, "get", "manifest", release, "--namespace", ns)
		helm(t, "uninstall", release, "--namespace", ns, "--wait")
		g.Eventually(func(g Gomega) {
			out, _ := runIn(nil, []byte(manifest), filepath.Join(k8sBin, "kubectl"), "get", "-f", "-", "-o", "name", "--ignore-not-found")
			left := strings.Fields(out)
			// The chart keeps its CRDs (crd.keep: true) and with them every status and command.
			for _, o := range left {
				g.Expect(o).To(HavePrefix("customresourcedefinition.apiextensions.k8s.io/guestagent"), "left after uninstall")
			}
			g.Expect(left).To(HaveLen(2))
			g.Expect(podsOf(g, "agentd")).To(BeEmpty())
			g.Expect(podsOf(g, "controller")).To(BeEmpty())
		}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
		var list gav1.GuestAgentStatusList
		g.Expect(cl.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).NotTo(BeEmpty(), "statuses are kept with the CRDs")
	})
}

// testKustomize applies config/default (the images it names are the ones built here) to the same
// cluster, checks agentd's pod publishes again, and deletes it all.
func testKustomize(t *testing.T) {
	g := NewWithT(t)
	// Start from no statuses, so the ones seen below are this installation's.
	g.Expect(cl.DeleteAllOf(ctx, &gav1.GuestAgentStatus{}, client.InNamespace(ns))).To(Succeed())
	out, err := run(nil, filepath.Join(bin, "kustomize"), "build", "config/default")
	g.Expect(err).NotTo(HaveOccurred())
	manifest := []byte(out)
	// The CRDs are still there from the Helm round (crd.keep): taking them over from Helm is what
	// moving an installation from Helm to kustomize means.
	_, err = runIn(nil, manifest, filepath.Join(k8sBin, "kubectl"), "apply", "--server-side", "--force-conflicts", "-f", "-")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		_, _ = runIn(nil, manifest, filepath.Join(k8sBin, "kubectl"), "delete", "--ignore-not-found", "--wait=true", "-f", "-")
	})
	var ds appsv1.DaemonSetList
	g.Expect(cl.List(ctx, &ds, client.InNamespace(ns))).To(Succeed())
	g.Expect(ds.Items).To(HaveLen(1))
	g.Eventually(func(g Gomega) {
		var d appsv1.DaemonSet
		g.Expect(cl.Get(ctx, client.ObjectKeyFromObject(&ds.Items[0]), &d)).To(Succeed())
		g.Expect(d.Status.NumberReady).To(Equal(int32(1)))
		var deps appsv1.DeploymentList
		g.Expect(cl.List(ctx, &deps, client.InNamespace(ns))).To(Succeed())
		g.Expect(deps.Items).To(HaveLen(1))
		g.Expect(deps.Items[0].Status.ReadyReplicas).To(Equal(*deps.Items[0].Spec.Replicas))
	}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		s := statusOf(g, ns, gBoth)
		g.Expect(s).NotTo(BeNil())
		g.Expect(s.Spec.NodeName).To(Equal(node))
		g.Expect(condition(s.Status.Conditions, gav1.ConditionAgentResponsive)).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	cmd := command(t, "cl-kustomize-ping", statusOf(g, ns, gBoth).Name, gav1.GuestAgentCommandSpec{Action: gav1.ActionPing})
	g.Expect(cmd.Status.Phase).To(Equal(gav1.PhaseSucceeded), "%+v", cmd.Status)
}

func probeCount(metrics, pod, kind, result string) float64 {
	var n float64
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "prober_probe_total{") && strings.Contains(l, `pod="`+pod+`"`) &&
			strings.Contains(l, `probe_type="`+kind+`"`) && strings.Contains(l, `result="`+result+`"`) {
			if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
				n += v
			}
		}
	}
	return n
}

func managers(mf []metav1.ManagedFieldsEntry) []string {
	var m []string
	for _, e := range mf {
		m = append(m, e.Manager)
	}
	return m
}

// countExecuted counts the entries of a command (key "<namespace>/<name>/<spec hash>") in a guest's
// executed-command history.
func countExecuted(s *gav1.GuestAgentStatus, cmdName string) int {
	n := 0
	for _, e := range s.Status.ExecutedCommands {
		if strings.HasPrefix(e.Key, ns+"/"+cmdName+"/") {
			n++
		}
	}
	return n
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func statusVersions(g Gomega) map[string]string {
	var list gav1.GuestAgentStatusList
	g.ExpectWithOffset(1, cl.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	m := map[string]string{}
	for _, s := range list.Items {
		m[s.Spec.DomainName] = s.ResourceVersion
	}
	return m
}

func statusUIDs(g Gomega) map[string]types.UID {
	var list gav1.GuestAgentStatusList
	g.ExpectWithOffset(1, cl.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	m := map[string]types.UID{}
	for _, s := range list.Items {
		m[s.Spec.DomainName] = s.UID
	}
	return m
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }
