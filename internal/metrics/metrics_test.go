package metrics_test

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/multinet/multinet/internal/dhcp"
	"github.com/multinet/multinet/internal/metrics"
)

var _ dhcp.Observer = (*metrics.Metrics)(nil) // multinetd gives its metrics to the lease manager

// TestDHCPMetricsOnTheEndpoint: what the lease manager counts is on /metrics, renewals by
// result, and both results are there before the first renewal.
func TestDHCPMetricsOnTheEndpoint(t *testing.T) {
	m := metrics.New()
	if body := scrape(t, m); !strings.Contains(body, `multinet_dhcp_renewals_total{result="failed"} 0`) {
		t.Errorf("no zero of failed renewals before the first one:\n%s", body)
	}
	m.DHCPLeasesHeld(3)
	m.DHCPLeasesHeld(2)
	m.DHCPRenewal(true)
	m.DHCPRenewal(true)
	m.DHCPRenewal(false)
	m.DHCPLeaseLost()
	body := scrape(t, m)
	for _, want := range []string{
		"multinet_dhcp_leases_held 2\n",
		`multinet_dhcp_renewals_total{result="ok"} 2` + "\n",
		`multinet_dhcp_renewals_total{result="failed"} 1` + "\n",
		"multinet_dhcp_leases_lost_total 1\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestHotplugMetricsOnTheEndpoint: plugs and unplugs by result, and reconcile latency.
func TestHotplugMetricsOnTheEndpoint(t *testing.T) {
	m := metrics.New()
	m.ObserveHotplug("plug", nil)
	m.ObserveHotplug("plug", io.EOF)
	m.ObserveHotplug("unplug", nil)
	m.ObserveReconcile(3*time.Millisecond, nil)
	body := scrape(t, m)
	for _, want := range []string{
		`multinet_hotplug_operations_total{operation="plug",result="success"} 1` + "\n",
		`multinet_hotplug_operations_total{operation="plug",result="error"} 1` + "\n",
		`multinet_hotplug_operations_total{operation="unplug",result="success"} 1` + "\n",
		`multinet_hotplug_reconcile_duration_seconds_bucket{result="success",le="0.004"} 1` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
}

// TestPhaseMetrics: the phases of a CNI verb, by command and phase.
func TestPhaseMetrics(t *testing.T) {
	m := metrics.New()
	m.ObservePhase("ADD", "intent", 300*time.Microsecond)
	if body := scrape(t, m); !strings.Contains(body, `multinet_cni_phase_seconds_bucket{command="ADD",phase="intent",le="0.0004"} 1`) {
		t.Errorf("/metrics has no intent phase of ADD in the 0.4 ms bucket")
	}
}

// TestReadyzNamesEveryReason: /readyz is 503 until SetReady(true) and every check added with
// ReadyWhen passes, and its body says which condition fails and why.
func TestReadyzNamesEveryReason(t *testing.T) {
	m := metrics.New()
	leases := errors.New("DHCP leases not reloaded yet")
	m.ReadyWhen("DHCP lease manager", func() error { return leases })
	for _, c := range []struct {
		ready  bool
		leases error
		code   int
		body   string
	}{
		{false, leases, 503, "not ready: caches not synced or conflist not written; DHCP lease manager: DHCP leases not reloaded yet\n"},
		{true, leases, 503, "not ready: DHCP lease manager: DHCP leases not reloaded yet\n"},
		{false, nil, 503, "not ready: caches not synced or conflist not written\n"},
		{true, nil, 200, "ok\n"},
	} {
		m.SetReady(c.ready)
		leases = c.leases
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != c.code || rec.Body.String() != c.body {
			t.Errorf("ready %t, leases %v: /readyz %d %q, want %d %q", c.ready, c.leases, rec.Code, rec.Body.String(), c.code, c.body)
		}
	}
}
