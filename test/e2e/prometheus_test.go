package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

const promAddr = "127.0.0.1:29090"

// startPrometheus runs bin/prometheus scraping agentd's /metrics every second, with the node
// label the chart's PodMonitor sets from the pod's node, and waits until it is ready.
func startPrometheus(t *testing.T) *proc {
	t.Helper()
	dir := filepath.Join(workDir, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: agentd
  static_configs:
  - targets: ["127.0.0.1:28080"]
    labels:
      node: %q
`, nodeName)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start("prometheus", "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	t.Cleanup(p.stop)
	NewWithT(t).Eventually(func() error {
		resp, err := http.Get("http://" + promAddr + "/-/ready")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	}).WithTimeout(60*time.Second).Should(Succeed(), func() string { return "prometheus ready\n" + p.tail() })
	return p
}

// promSeries is one element of an instant query's vector result.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery evaluates expr at the current time through Prometheus's HTTP API.
func promQuery(expr string) ([]promSeries, error) {
	resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string       `json:"resultType"`
			Result     []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding the answer to %s: %w", expr, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s: %s", expr, r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", expr, r.Data.ResultType)
	}
	return r.Data.Result, nil
}

// panelQuery is one query of a dashboard panel.
type panelQuery struct {
	panel, expr string
}

// dashboardQueries reads every panel query of the shipped Grafana dashboard, with the dashboard
// variables replaced as Grafana does for node = this node, domain = All, topn = 10.
func dashboardQueries(t *testing.T) []panelQuery {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "charts/guestagent-operator/files/dashboards/guestagent-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$node", nodeName, "$domain", ".*", "$topn", "10", "$__rate_interval", "1m")
	var out []panelQuery
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					out = append(out, panelQuery{panel: p.Title, expr: vars.Replace(tg.Expr)})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

// domainsIn returns the values of the domain label in a result; an aggregate without that label
// counts as "*".
func domainsIn(res []promSeries) map[string]bool {
	m := map[string]bool{}
	for _, s := range res {
		if d, ok := s.Metric["domain"]; ok {
			m[d] = true
		} else {
			m["*"] = true
		}
	}
	return m
}
