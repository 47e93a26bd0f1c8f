package manifests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/multinet/multinet/internal/metrics"
)

// TestGrafanaDashboardUsesExportedMetrics: deploy/grafana's dashboard is valid JSON and every
// multinet_ metric its queries name is one multinetd exports (a renamed metric breaks it).
func TestGrafanaDashboardUsesExportedMetrics(t *testing.T) {
	data, err := os.ReadFile("../../deploy/grafana/multinet-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	exported := exportedMetrics(t)
	name := regexp.MustCompile(`\b(multinet_[a-z_]+?)(_bucket|_sum|_count)?\b`)
	seen := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, m := range name.FindAllStringSubmatch(target.Expr, -1) {
				seen++
				if !exported[m[1]] {
					t.Errorf("panel %q queries %s, which multinetd does not export", p.Title, m[1])
				}
			}
		}
	}
	if seen < 8 {
		t.Errorf("the dashboard queries only %d multinet metrics", seen)
	}
}

// exportedMetrics are the metric families on the daemon registry's /metrics once each has a
// sample (a labelled family without one is not listed).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	m.ObserveCNI("ADD", time.Millisecond, nil)
	rt := m.CountingTransport(roundTripper(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	if _, err := rt.RoundTrip(httptest.NewRequest("GET", "/api", nil)); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			out[strings.Fields(rest)[0]] = true
		}
	}
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
