package install

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	agentdconfig "guestagent.io/operator/agentd/config"
)

// installNS is the namespace the chart and config/default install into.
const installNS = "guestagent-system"

// allValues enables every optional part of the chart.
var allValues = filepath.Join(chartDir, "ci", "all-values.yaml")

// socketValues configure sockets-only nodes (no libvirt, QEMU guest agent sockets).
var socketValues = filepath.Join(chartDir, "ci", "qga-sockets-values.yaml")

// TestChartCopiesInSync checks that the chart's copies of generated and shared files are
// identical to their sources (run hack/sync-chart-crds.sh after `make manifests`).
func TestChartCopiesInSync(t *testing.T) {
	pairs := map[string]string{
		"config/rbac/role.yaml":         "charts/guestagent-operator/files/rbac/manager-role.yaml",
		"config/agentd/rbac/role.yaml":  "charts/guestagent-operator/files/rbac/agentd-role.yaml",
		"config/prometheus/alerts.yaml": "charts/guestagent-operator/files/prometheus/alerts.yaml",
	}
	for _, glob := range []struct{ src, dst, pattern string }{
		{"config/crd/bases", "charts/guestagent-operator/files/crd", "*.yaml"},
		{"config/grafana", "charts/guestagent-operator/files/dashboards", "*.json"},
	} {
		srcs, _ := filepath.Glob(filepath.Join(root, glob.src, glob.pattern))
		dsts, _ := filepath.Glob(filepath.Join(root, glob.dst, glob.pattern))
		if len(srcs) == 0 {
			t.Errorf("no %s in %s", glob.pattern, glob.src)
		}
		for _, s := range srcs {
			pairs[filepath.Join(glob.src, filepath.Base(s))] = filepath.Join(glob.dst, filepath.Base(s))
		}
		for _, d := range dsts {
			if _, err := os.Stat(filepath.Join(root, glob.src, filepath.Base(d))); err != nil {
				t.Errorf("%s/%s has no source in %s", glob.dst, filepath.Base(d), glob.src)
			}
		}
	}
	for src, dst := range pairs {
		a, b := readFile(t, src), readFile(t, dst)
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: run hack/sync-chart-crds.sh", dst, src)
		}
	}
}

// TestChartRBACMatchesConfig checks that the chart grants exactly the roles of config/: the
// controller-gen generated ClusterRole of each binary, and the hand-written leader election,
// metrics and user roles.
func TestChartRBACMatchesConfig(t *testing.T) {
	chart := byKindName(helmTemplate(t, installNS))
	kust := byKindName(decodeAll(t, run(t, "kustomize", "build", "config/default")))
	generated := func(rel string) []rbacv1.PolicyRule {
		var r rbacv1.ClusterRole
		if err := yaml.Unmarshal(readFile(t, rel), &r); err != nil {
			t.Fatal(err)
		}
		return r.Rules
	}
	cases := []struct {
		chartKind, chartName, kustName string
		want                           []rbacv1.PolicyRule
	}{
		{"ClusterRole", "ga-guestagent-operator-manager", "", generated("config/rbac/role.yaml")},
		{"ClusterRole", "ga-guestagent-operator-agentd", "", generated("config/agentd/rbac/role.yaml")},
		{"ClusterRole", "ga-guestagent-operator-manager", "guestagent-manager-role", nil},
		{"ClusterRole", "ga-guestagent-operator-agentd", "guestagent-agentd-role", nil},
		{"Role", "ga-guestagent-operator-leader-election", "guestagent-leader-election-role", nil},
		{"ClusterRole", "ga-guestagent-operator-metrics-auth", "guestagent-metrics-auth-role", nil},
		{"ClusterRole", "ga-guestagent-operator-metrics-reader", "guestagent-metrics-reader", nil},
		{"ClusterRole", "ga-guestagent-operator-command-editor", "guestagent-guestagentcommand-editor-role", nil},
		{"ClusterRole", "ga-guestagent-operator-status-viewer", "guestagent-guestagentstatus-viewer-role", nil},
	}
	for _, c := range cases {
		got := rulesOf(t, chart, c.chartKind, c.chartName)
		want := c.want
		if c.kustName != "" {
			want = rulesOf(t, kust, c.chartKind, c.kustName)
			g := aggregationLabels(chart[c.chartKind+"/"+c.chartName])
			w := aggregationLabels(kust[c.chartKind+"/"+c.kustName])
			if !maps.Equal(g, w) {
				t.Errorf("%s %s: aggregation labels %v, config/ has %v", c.chartKind, c.chartName, g, w)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s rules differ from config/:\n chart: %+v\nconfig: %+v", c.chartKind, c.chartName, got, want)
		}
	}
	// Every role of config/default has its counterpart in the chart.
	var kustRoles, covered []string
	for k := range kust {
		if strings.HasPrefix(k, "ClusterRole/") || strings.HasPrefix(k, "Role/") {
			kustRoles = append(kustRoles, k)
		}
	}
	for _, c := range cases {
		if c.kustName != "" {
			covered = append(covered, c.chartKind+"/"+c.kustName)
		}
	}
	slices.Sort(kustRoles)
	slices.Sort(covered)
	if !slices.Equal(kustRoles, covered) {
		t.Errorf("config/default roles %v, compared with the chart: %v", kustRoles, covered)
	}
}

// TestAdmissionPolicyMatchesAgentd checks that the admission policy, as config/default and the
// chart render it, matches the user name of the ServiceAccount agentd's DaemonSet runs as, and
// that the chart's policy is config/policy's.
func TestAdmissionPolicyMatchesAgentd(t *testing.T) {
	kust := byKindName(decodeAll(t, run(t, "kustomize", "build", "config/default")))
	chart := byKindName(helmTemplate(t, installNS, "-f", allValues))
	for name, objs := range map[string]map[string]*unstructured.Unstructured{"kustomize": kust, "helm": chart} {
		user := agentdUser(t, objs)
		policy := only(t, objs, "ValidatingAdmissionPolicy")
		got := isAgentdExpression(t, policy)
		// Evaluate the two spellings as CEL would: concatenate the quoted parts.
		lit := regexp.MustCompile(`'([^']*)'`)
		var parts []string
		for _, m := range lit.FindAllStringSubmatch(got, -1) {
			parts = append(parts, m[1])
		}
		if !strings.HasPrefix(got, "request.userInfo.username == ") || strings.Join(parts, "") != user {
			t.Errorf("%s: policy matches %q (%s), agentd runs as %s", name, strings.Join(parts, ""), got, user)
		}
		binding := only(t, objs, "ValidatingAdmissionPolicyBinding")
		if ref, _, _ := unstructured.NestedString(binding.Object, "spec", "policyName"); ref != policy.GetName() {
			t.Errorf("%s: binding refers to policy %q, the policy is %q", name, ref, policy.GetName())
		}
		if policy.GetNamespace() != "" || binding.GetNamespace() != "" {
			t.Errorf("%s: the cluster-scoped policy objects carry a namespace", name)
		}
	}
	// Same rules: compare the specs with the match condition taken out.
	k, c := only(t, kust, "ValidatingAdmissionPolicy"), only(t, chart, "ValidatingAdmissionPolicy")
	ks, _, _ := unstructured.NestedMap(k.Object, "spec")
	cs, _, _ := unstructured.NestedMap(c.Object, "spec")
	delete(ks, "matchConditions")
	delete(cs, "matchConditions")
	if !reflect.DeepEqual(ks, cs) {
		a, _ := yaml.Marshal(ks)
		b, _ := yaml.Marshal(cs)
		t.Errorf("the chart's admission policy differs from config/policy:\nconfig:\n%s\nchart:\n%s", a, b)
	}
}

// TestChartCRDsMatchGenerated checks that the CRDs the chart renders (through fromYaml/toYaml)
// have exactly the generated specs, and carry the keep annotation only when crd.keep is set.
func TestChartCRDsMatchGenerated(t *testing.T) {
	want := map[string]*unstructured.Unstructured{}
	files, _ := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range decodeAll(t, b) {
			want[o.GetName()] = o
		}
	}
	for _, keep := range []bool{true, false} {
		got := 0
		for _, o := range helmTemplate(t, installNS, fmt.Sprintf("--set=crd.keep=%t", keep)) {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			got++
			w, ok := want[o.GetName()]
			if !ok {
				t.Errorf("the chart renders CRD %s, config/crd/bases has no such CRD", o.GetName())
				continue
			}
			if !reflect.DeepEqual(o.Object["spec"], w.Object["spec"]) {
				t.Errorf("CRD %s: the chart's spec differs from config/crd/bases", o.GetName())
			}
			if has := o.GetAnnotations()["helm.sh/resource-policy"] == "keep"; has != keep {
				t.Errorf("CRD %s with crd.keep=%t: keep annotation present=%t", o.GetName(), keep, has)
			}
		}
		if got != len(want) {
			t.Errorf("the chart renders %d CRDs, config/crd/bases has %d", got, len(want))
		}
	}
	for _, o := range helmTemplate(t, installNS, "--set=crd.enabled=false") {
		if o.GetKind() == "CustomResourceDefinition" {
			t.Errorf("crd.enabled=false still renders CRD %s", o.GetName())
		}
	}
}

// TestChartLabels checks the standard app.kubernetes.io labels on every object the chart renders.
func TestChartLabels(t *testing.T) {
	for _, o := range helmTemplate(t, installNS, "-f", allValues) {
		l := o.GetLabels()
		for _, k := range []string{"name", "instance", "version", "part-of", "managed-by"} {
			if l["app.kubernetes.io/"+k] == "" {
				t.Errorf("%s %s has no app.kubernetes.io/%s label", o.GetKind(), o.GetName(), k)
			}
		}
		switch o.GetKind() {
		case "Deployment", "DaemonSet", "Service", "ServiceAccount", "ServiceMonitor", "ConfigMap":
			if o.GetName() != "ga-guestagent-operator-dashboards" && l["app.kubernetes.io/component"] == "" {
				t.Errorf("%s %s has no app.kubernetes.io/component label", o.GetKind(), o.GetName())
			}
		}
	}
}

// TestAgentdConfigAccepted loads the agentd.yaml that the chart (default and all values) and
// config/default ship with agentd's own configuration loader: it must be valid, and the chart's
// default must equal agentd's built-in defaults (bar the namespace, which follows the release).
func TestAgentdConfigAccepted(t *testing.T) {
	sources := map[string][]*unstructured.Unstructured{
		"helm default":    helmTemplate(t, installNS),
		"helm all values": helmTemplate(t, installNS, "-f", allValues),
		"helm sockets":    helmTemplate(t, installNS, "-f", socketValues),
		"kustomize":       decodeAll(t, run(t, "kustomize", "build", "config/default")),
	}
	for name, objs := range sources {
		var cm *unstructured.Unstructured
		for _, o := range objs {
			if o.GetKind() == "ConfigMap" && strings.HasSuffix(o.GetName(), "agentd-config") {
				cm = o
			}
		}
		if cm == nil {
			t.Fatalf("%s: no agentd ConfigMap", name)
		}
		data, _, _ := unstructured.NestedString(cm.Object, "data", "agentd.yaml")
		file := filepath.Join(t.TempDir(), "agentd.yaml")
		if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := agentdconfig.Load(flag.NewFlagSet("agentd", flag.ContinueOnError),
			[]string{"--config=" + file, "--node-name=node-a"})
		if err != nil {
			t.Errorf("%s: agentd rejects its agentd.yaml: %v\n%s", name, err, data)
			continue
		}
		if name == "helm sockets" && (cfg.LibvirtEnabled() || cfg.QGASockets.Directory != "/run/qga" || len(cfg.QGASockets.Domains) != 1) {
			t.Errorf("%s: sockets-only configuration lost: %+v", name, cfg)
		}
		if name == "helm default" {
			def := agentdconfig.Default()
			def.NodeName = "node-a"
			def.DefaultNamespace = installNS
			if !reflect.DeepEqual(cfg, def) {
				t.Errorf("the chart's default agentd.yaml differs from agentd's defaults:\nchart:  %+v\nagentd: %+v", cfg, def)
			}
		}
	}
}

// TestDashboard checks the Grafana dashboard: valid JSON, a templated Prometheus data source on
// every panel, node/domain variables, and only metrics that the code actually exports.
func TestDashboard(t *testing.T) {
	var dash struct {
		Panels []struct {
			Title      string            `json:"title"`
			Type       string            `json:"type"`
			Datasource map[string]string `json:"datasource"`
			Targets    []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(readFile(t, "config/grafana/guestagent-operator.json"), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["node"] != "query" || vars["domain"] != "query" {
		t.Errorf("want variables datasource (datasource), node and domain (query), got %v", vars)
	}
	exported := exportedMetrics(t)
	metric := regexp.MustCompile(`guestagent_[a-z_]+`)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q: data source %v, want uid ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !exported[base] {
					t.Errorf("panel %q uses %s, which no code exports", p.Title, m)
				}
				used[base] = true
			}
		}
	}
	for m := range exported {
		if !used[m] {
			t.Logf("metric %s is not on the dashboard", m)
		}
	}
}

// exportedMetrics returns the guestagent_* metric names defined in the non-test Go code of
// agentd/ and controllers/.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`"(guestagent_[a-z_]+)"`)
	for _, dir := range []string{"agentd", "controllers"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			for _, m := range re.FindAllSubmatch(b, -1) {
				names[string(m[1])] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(names) == 0 {
		t.Fatal("found no guestagent_* metrics in the code")
	}
	return names
}

// TestChartAcceptedByAPIServer applies everything the chart renders (default values, and all
// options on) to the API server: CRDs and namespaces for real, everything else as a server-side
// apply dry run, which runs defaulting, validation and admission without persisting.
func TestChartAcceptedByAPIServer(t *testing.T) {
	t.Run("default values", func(t *testing.T) {
		assertAccepted(t, helmTemplate(t, installNS), installNS)
	})
	t.Run("all values", func(t *testing.T) {
		assertAccepted(t, helmTemplate(t, installNS, "-f", allValues), installNS, "monitoring")
	})
}

// TestKustomizeAcceptedByAPIServer does the same for config/default, and for config/prometheus
// and config/grafana laid over it (they are optional, so not in config/default).
func TestKustomizeAcceptedByAPIServer(t *testing.T) {
	t.Run("config/default", func(t *testing.T) {
		assertAccepted(t, decodeAll(t, run(t, "kustomize", "build", "config/default")))
	})
	t.Run("config/default with prometheus and grafana", func(t *testing.T) {
		dir := t.TempDir()
		k := fmt.Sprintf(`namespace: %s
namePrefix: guestagent-
resources:
- %s
- %s
`, installNS, relTo(t, dir, "config/prometheus"), relTo(t, dir, "config/grafana"))
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
			t.Fatal(err)
		}
		objs := decodeAll(t, run(t, "kustomize", "build", dir))
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[o.GetKind()]++
		}
		if kinds["ServiceMonitor"] != 2 || kinds["ConfigMap"] != 1 {
			t.Fatalf("want 2 ServiceMonitors and a ConfigMap, got %v", kinds)
		}
		assertAccepted(t, objs, installNS)
	})
}

// assertAccepted creates the namespaces (those in objs, and extra), installs CRDs (those in objs
// and the ServiceMonitor stand-in when objs has ServiceMonitors) for real, and dry-runs a
// server-side apply of every other object, failing on each rejection.
func assertAccepted(t *testing.T, objs []*unstructured.Unstructured, extraNamespaces ...string) {
	t.Helper()
	ctx := t.Context()
	if len(objs) == 0 {
		t.Fatal("nothing rendered")
	}
	var rest []*unstructured.Unstructured
	needSM := false
	for _, ns := range extraNamespaces {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("Namespace")
		u.SetName(ns)
		objs = append([]*unstructured.Unstructured{u}, objs...)
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition":
			if err := apply(ctx, o); err != nil {
				t.Errorf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		case "ServiceMonitor", "PrometheusRule":
			needSM = true
			rest = append(rest, o)
		default:
			rest = append(rest, o)
		}
	}
	if needSM {
		// The Prometheus Operator is not installed here: install the stand-in CRDs (see testdata).
		for _, f := range []string{"servicemonitor-crd.yaml", "prometheusrule-crd.yaml"} {
			for _, o := range decodeAll(t, readFile(t, "test/install/testdata/"+f)) {
				if err := apply(ctx, o); err != nil {
					t.Fatal(err)
				}
				waitEstablished(ctx, t, o.GetName())
			}
		}
	}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			waitEstablished(ctx, t, o.GetName())
		}
	}
	for _, o := range rest {
		// Right after a CRD is established the client's REST mapping may still miss it: retry
		// "no match" errors until the poll timeout.
		NewWithT(t).Eventually(func() error {
			err := apply(ctx, o, client.DryRunAll)
			if err != nil && !isNoMatch(err) {
				t.Errorf("the API server rejects %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				return nil
			}
			return err
		}).WithTimeout(pollTimeout).WithPolling(pollInterval).Should(Succeed(), fmt.Sprintf("dry-run apply of %s %s", o.GetKind(), o.GetName()))
	}
}

// waitEstablished waits until the named CRD is Established.
func waitEstablished(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("not established yet")
	}).WithTimeout(pollTimeout).WithPolling(pollInterval).Should(Succeed(), "CRD "+name+" established")
}

// isNoMatch reports whether err says the client does not know the kind yet (a CRD installed a
// moment ago), which a retry fixes.
func isNoMatch(err error) bool {
	if err == nil {
		return false
	}
	return meta.IsNoMatchError(err) || strings.Contains(err.Error(), "no matches for kind") ||
		apierrors.IsNotFound(err) && strings.Contains(err.Error(), "could not find the requested resource")
}

// byKindName indexes objects by "Kind/name".
func byKindName(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[o.GetKind()+"/"+o.GetName()] = o
	}
	return m
}

// only returns the single object of kind in objs.
func only(t *testing.T, objs map[string]*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s, got %d", kind, len(found))
	}
	return found[0]
}

// rulesOf returns the rules of the Role or ClusterRole kind/name in objs.
func rulesOf(t *testing.T, objs map[string]*unstructured.Unstructured, kind, name string) []rbacv1.PolicyRule {
	t.Helper()
	o, ok := objs[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s %s", kind, name)
	}
	var r rbacv1.ClusterRole
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
		t.Fatal(err)
	}
	return r.Rules
}

// aggregationLabels returns the rbac.authorization.k8s.io/aggregate-to-* labels of o.
func aggregationLabels(o *unstructured.Unstructured) map[string]string {
	m := map[string]string{}
	for k, v := range o.GetLabels() {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			m[k] = v
		}
	}
	return m
}

// agentdUser returns the user name of the ServiceAccount agentd's DaemonSet runs as.
func agentdUser(t *testing.T, objs map[string]*unstructured.Unstructured) string {
	t.Helper()
	ds := only(t, objs, "DaemonSet")
	sa, _, _ := unstructured.NestedString(ds.Object, "spec", "template", "spec", "serviceAccountName")
	if _, ok := objs["ServiceAccount/"+sa]; !ok {
		t.Errorf("agentd runs as ServiceAccount %q, which is not installed", sa)
	}
	return fmt.Sprintf("system:serviceaccount:%s:%s", ds.GetNamespace(), sa)
}

// isAgentdExpression returns the expression of the policy's is-agentd match condition.
func isAgentdExpression(t *testing.T, policy *unstructured.Unstructured) string {
	t.Helper()
	conds, _, _ := unstructured.NestedSlice(policy.Object, "spec", "matchConditions")
	for _, c := range conds {
		if m := c.(map[string]any); m["name"] == "is-agentd" {
			return m["expression"].(string)
		}
	}
	t.Fatal("no is-agentd match condition")
	return ""
}

// relTo returns the path of the repository directory rel relative to dir (kustomize refuses
// absolute resource paths).
func relTo(t *testing.T, dir, rel string) string {
	t.Helper()
	p, err := filepath.Rel(dir, filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestChartQGASocketMounts: sockets-only nodes mount the socket directory and nothing of
// libvirt; by default nothing of the sockets is mounted.
func TestChartQGASocketMounts(t *testing.T) {
	volumes := func(objs []*unstructured.Unstructured) map[string]string {
		out := map[string]string{}
		for _, o := range objs {
			if o.GetKind() != "DaemonSet" {
				continue
			}
			vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
			for _, v := range vols {
				m := v.(map[string]any)
				p, _, _ := unstructured.NestedString(m, "hostPath", "path")
				out[m["name"].(string)] = p
			}
		}
		return out
	}
	def := volumes(helmTemplate(t, installNS))
	if _, ok := def["qga-sockets"]; ok || def["libvirt-run"] == "" {
		t.Errorf("default volumes: %v", def)
	}
	sock := volumes(helmTemplate(t, installNS, "-f", socketValues))
	if sock["qga-sockets"] != "/run/qga" || sock["libvirt-run"] != "" || sock["ovirt-channels"] != "" {
		t.Errorf("sockets-only volumes: %v", sock)
	}
}
