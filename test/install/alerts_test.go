package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"
)

// TestAlertRules checks the alerting rules of config/prometheus/alerts.yaml (the chart ships a
// copy) with the real Prometheus rule engine: `promtool check rules` parses every expression and
// template, and `promtool test rules` runs the unit tests in config/prometheus/alerts_test.yaml
// (each alert fires on the series it is meant for, with the expected labels and annotations, and
// stays quiet on the others). Every guestagent_* metric the rules use must be exported by the code,
// and the chart must render the same rules.
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool")
	var rule struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []struct {
				Name  string           `json:"name"`
				Rules []map[string]any `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(readFile(t, "config/prometheus/alerts.yaml"), &rule); err != nil {
		t.Fatal(err)
	}
	if rule.Kind != "PrometheusRule" || len(rule.Spec.Groups) == 0 {
		t.Fatalf("config/prometheus/alerts.yaml: kind %q with %d groups", rule.Kind, len(rule.Spec.Groups))
	}
	exported := exportedMetrics(t)
	metric := regexp.MustCompile(`guestagent_[a-z_]+`)
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			expr, _ := r["expr"].(string)
			for _, m := range metric.FindAllString(expr, -1) {
				if !exported[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")] {
					t.Errorf("alert %v uses %s, which no code exports", r["alert"], m)
				}
			}
		}
	}

	// The chart renders the same rules (its copy is checked by TestChartCopiesInSync).
	src := decodeAll(t, readFile(t, "config/prometheus/alerts.yaml"))[0]
	rendered := byKindName(helmTemplate(t, installNS, "-f", allValues))["PrometheusRule/ga-guestagent-operator-alerts"]
	if rendered == nil {
		t.Fatal("the chart renders no PrometheusRule with metrics.prometheusRule.enabled")
	}
	if !equality.Semantic.DeepEqual(rendered.Object["spec"], src.Object["spec"]) {
		t.Error("the chart's PrometheusRule spec differs from config/prometheus/alerts.yaml")
	}

	dir := t.TempDir()
	groups, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.rules.yaml"), groups, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), readFile(t, "config/prometheus/alerts_test.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		}
	}
}
