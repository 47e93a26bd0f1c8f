// Package metrics holds the daemon's Prometheus metrics and serves /metrics, /healthz and
// /readyz.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the daemon's instruments.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	api      *prometheus.CounterVec
	phases   *prometheus.HistogramVec
	dhcp     dhcpMetrics
	hotplug  hotplugMetrics
	ipam     ipamMetrics
	policy   policyMetrics
	ready    atomic.Bool

	mu     sync.Mutex
	checks []readyCheck // more conditions of /readyz
}

// readyCheck is a condition of /readyz: check says why what is named is not ready, or nil.
type readyCheck struct {
	name  string
	check func() error
}

// hotplugMetrics are hot plug's instruments.
type hotplugMetrics struct {
	operations *prometheus.CounterVec
	reconciles *prometheus.HistogramVec
}

// ipamMetrics are the cluster-wide address manager's instruments.
type ipamMetrics struct {
	allocations *prometheus.CounterVec
	releases    prometheus.Counter
	claimed     prometheus.Counter
	reclaimed   *prometheus.CounterVec
}

// policyMetrics are MultiNetworkPolicy enforcement's instruments.
type policyMetrics struct {
	policies  prometheus.Gauge
	sandboxes prometheus.Gauge
	allows    prometheus.Gauge
	syncs     *prometheus.HistogramVec
	failures  prometheus.Counter
}

// dhcpMetrics are the lease manager's instruments.
type dhcpMetrics struct {
	held     prometheus.Gauge
	renewals *prometheus.CounterVec
	lost     prometheus.Counter
}

// New registers the instruments on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "multinet_cni_requests_total", Help: "CNI requests served, by command and result.",
		}, []string{"command", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "multinet_cni_request_duration_seconds", Help: "Time to serve a CNI request.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"command"}),
		api: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "multinet_api_requests_total", Help: "Requests the daemon made to the Kubernetes API, by method and status code.",
		}, []string{"method", "code"}),
		dhcp: dhcpMetrics{
			held: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "multinet_dhcp_leases_held", Help: "DHCP leases the lease manager holds for pod interfaces.",
			}),
			renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "multinet_dhcp_renewals_total",
				Help: "DHCP lease renewals (RENEWING, REBINDING, INIT-REBOOT after a restart), by result (ok, failed).",
			}, []string{"result"}),
			lost: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "multinet_dhcp_leases_lost_total",
				Help: "DHCP leases the server no longer granted (expired unanswered or refused) and did not give back.",
			}),
		},
	}
	m.phases = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "multinet_cni_phase_seconds",
		Help:    "Time of each phase of a CNI verb in multinetd: plan, intent (the durable record), delegates (the plugins), record, publish, result.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"command", "phase"})
	m.hotplug = hotplugMetrics{
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "multinet_hotplug_operations_total",
			Help: "Interfaces plugged into or unplugged from running pods, by operation (plug, unplug) and result (success, error).",
		}, []string{"operation", "result"}),
		reconciles: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "multinet_hotplug_reconcile_duration_seconds",
			Help:    "Time to reconcile one pod's networks annotation with its interfaces, by result (success, error).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"result"}),
	}
	for _, r := range []string{"success", "error"} { // zeros on the first scrape
		m.hotplug.operations.WithLabelValues("plug", r)
		m.hotplug.operations.WithLabelValues("unplug", r)
		m.hotplug.reconciles.WithLabelValues(r)
	}
	m.ipam = ipamMetrics{
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "multinet_ipam_allocations_total",
			Help: "Addresses multinet-ipam handed out, by where (local: a block this node owns; borrowed: another node's block, by compare-and-swap).",
		}, []string{"block"}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "multinet_ipam_releases_total", Help: "Addresses multinet-ipam freed (DEL, GC, a failed ADD, a reclaim).",
		}),
		claimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "multinet_ipam_blocks_claimed_total", Help: "IPBlocks this node claimed.",
		}),
		reclaimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "multinet_ipam_reclaimed_total",
			Help: "Addresses freed that nobody released, by kind (pod: gone without DEL; hold: a StatefulSet hold expired; node: a deleted node's).",
		}, []string{"kind"}),
	}
	for _, k := range []string{"pod", "hold", "node"} {
		m.ipam.reclaimed.WithLabelValues(k)
	}
	m.policy = newPolicyMetrics()
	m.ipam.allocations.WithLabelValues("local")
	m.ipam.allocations.WithLabelValues("borrowed")
	m.dhcp.renewals.WithLabelValues("ok")
	m.dhcp.renewals.WithLabelValues("failed")
	m.reg.MustRegister(m.requests, m.duration, m.api, m.dhcp.held, m.dhcp.renewals, m.dhcp.lost,
		m.hotplug.operations, m.hotplug.reconciles, m.phases,
		m.ipam.allocations, m.ipam.releases, m.ipam.claimed, m.ipam.reclaimed,
		m.policy.policies, m.policy.sandboxes, m.policy.allows, m.policy.syncs, m.policy.failures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveCNI records one served request.
func (m *Metrics) ObserveCNI(command string, took time.Duration, err error) {
	m.requests.WithLabelValues(command, result(err)).Inc()
	m.duration.WithLabelValues(command).Observe(took.Seconds())
}

// ObservePhase records one phase of a CNI verb.
func (m *Metrics) ObservePhase(command, phase string, took time.Duration) {
	m.phases.WithLabelValues(command, phase).Observe(took.Seconds())
}

// ObserveHotplug records one plug or unplug ("plug", "unplug").
func (m *Metrics) ObserveHotplug(operation string, err error) {
	m.hotplug.operations.WithLabelValues(operation, result(err)).Inc()
}

// ObserveReconcile records one hot plug reconcile of a pod.
func (m *Metrics) ObserveReconcile(took time.Duration, err error) {
	m.hotplug.reconciles.WithLabelValues(result(err)).Observe(took.Seconds())
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "success"
}

func newPolicyMetrics() policyMetrics {
	p := policyMetrics{
		policies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "multinet_policies", Help: "MultiNetworkPolicies multinetd knows (valid ones).",
		}),
		sandboxes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "multinet_policy_sandboxes", Help: "Sandboxes of this node with MultiNetworkPolicy rules programmed.",
		}),
		allows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "multinet_policy_rules", Help: "MultiNetworkPolicy allow entries programmed in this node's sandboxes, all interfaces and directions.",
		}),
		syncs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "multinet_policy_sync_duration_seconds",
			Help:    "Time to compute and program one sandbox's MultiNetworkPolicy rules, by result (success, error).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"result"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "multinet_policy_failures_total", Help: "Attempts to program a sandbox's MultiNetworkPolicy rules that failed.",
		}),
	}
	p.syncs.WithLabelValues("success")
	p.syncs.WithLabelValues("error")
	return p
}

// ObservePolicySync records one sandbox's rules computed and programmed.
func (m *Metrics) ObservePolicySync(took time.Duration, err error) {
	m.policy.syncs.WithLabelValues(result(err)).Observe(took.Seconds())
	if err != nil {
		m.policy.failures.Inc()
	}
}

// Policies sets the number of MultiNetworkPolicies known.
func (m *Metrics) Policies(n int) { m.policy.policies.Set(float64(n)) }

// PolicyProgrammed sets the number of sandboxes with rules programmed and of the allow
// entries they hold.
func (m *Metrics) PolicyProgrammed(sandboxes, allows int) {
	m.policy.sandboxes.Set(float64(sandboxes))
	m.policy.allows.Set(float64(allows))
}

// DHCPLeasesHeld sets the number of leases the lease manager holds.
func (m *Metrics) DHCPLeasesHeld(n int) { m.dhcp.held.Set(float64(n)) }

// DHCPRenewal counts one renewal conversation.
func (m *Metrics) DHCPRenewal(ok bool) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.dhcp.renewals.WithLabelValues(result).Inc()
}

// DHCPLeaseLost counts a lease the server no longer grants (once per loss).
func (m *Metrics) DHCPLeaseLost() { m.dhcp.lost.Inc() }

// IPAMAllocated counts an address handed out.
func (m *Metrics) IPAMAllocated(borrowed bool) {
	where := "local"
	if borrowed {
		where = "borrowed"
	}
	m.ipam.allocations.WithLabelValues(where).Inc()
}

// IPAMReleased counts an address freed.
func (m *Metrics) IPAMReleased() { m.ipam.releases.Inc() }

// IPAMBlockClaimed counts a block claimed.
func (m *Metrics) IPAMBlockClaimed() { m.ipam.claimed.Inc() }

// IPAMReclaimed counts an address freed that nobody released.
func (m *Metrics) IPAMReclaimed(kind string) { m.ipam.reclaimed.WithLabelValues(kind).Inc() }

// SetReady flips /readyz: the caches are synced and multinet's conflist is written.
func (m *Metrics) SetReady(ok bool) { m.ready.Store(ok) }

// ReadyWhen adds a condition to /readyz: check says why the component named is not ready,
// or nil. /readyz answers 503 with every reason while SetReady is false or a check fails.
func (m *Metrics) ReadyWhen(name string, check func() error) {
	m.mu.Lock()
	m.checks = append(m.checks, readyCheck{name, check})
	m.mu.Unlock()
}

// notReady lists why the daemon is not ready; none when it is.
func (m *Metrics) notReady() []string {
	var why []string
	if !m.ready.Load() {
		why = append(why, "caches not synced or conflist not written")
	}
	m.mu.Lock()
	checks := m.checks
	m.mu.Unlock()
	for _, c := range checks {
		if err := c.check(); err != nil {
			why = append(why, c.name+": "+err.Error())
		}
	}
	return why
}

// CountingTransport wraps a client-go transport so every API request is counted.
func (m *Metrics) CountingTransport(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		code := "error"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
		}
		m.api.WithLabelValues(r.Method, code).Inc()
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Handler serves /metrics, /healthz and /readyz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := m.notReady(); len(why) > 0 {
			http.Error(w, "not ready: "+strings.Join(why, "; "), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
