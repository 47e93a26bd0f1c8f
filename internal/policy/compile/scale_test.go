package compile

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/multinet/multinet/internal/policy/spec"
)

// The networks of the generated cluster.
const (
	netA = "bench/a"
	netB = "bench/b"
)

// genCluster is a cluster of namespaces × perNamespace pods, labelled app=aN (20 values) and
// tier=tN (5 values), with an address on netA each and on netB every other one, and a
// named port http; namespaces ns-N are labelled team=tN (10 values). The local pod is
// ns-0/pod-0, on both networks; 50 policies of ns-0 select it with pod and namespace
// selectors, ports by number and, one in five, an egress port by name.
func genCluster(namespaces, perNamespace int) (*Pod, []Interface, []*spec.Policy, *view) {
	v := &view{namespaces: map[string]map[string]string{}, pods: map[string][]*Pod{}}
	for i := range namespaces {
		ns := fmt.Sprintf("ns-%d", i)
		v.order = append(v.order, ns)
		v.namespaces[ns] = map[string]string{"team": fmt.Sprintf("t%d", i%10), "kubernetes.io/metadata.name": ns}
		for j := range perNamespace {
			n := i*perNamespace + j
			p := &Pod{
				Namespace: ns, Name: fmt.Sprintf("pod-%d", j),
				Labels:    map[string]string{"app": fmt.Sprintf("a%d", j%20), "tier": fmt.Sprintf("t%d", j%5)},
				Addresses: map[string][]netip.Addr{netA: {netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)})}},
				Ports:     []NamedPort{{Name: "http", Protocol: spec.TCP, Port: uint16(8000 + j%3)}},
			}
			if n%2 == 0 {
				p.Addresses[netB] = []netip.Addr{netip.AddrFrom16([16]byte{0xfd, 15: byte(n), 14: byte(n >> 8)})}
			}
			v.pods[ns] = append(v.pods[ns], p)
		}
	}
	var policies []*spec.Policy
	for k := range 50 {
		p := &spec.Policy{
			Namespace: "ns-0", Name: fmt.Sprintf("policy-%d", k), Networks: []string{netA},
			PodSelector: sel("tier=t0"), Ingress: true, Egress: true,
			IngressRules: []spec.Rule{rule(peers(
				pods(fmt.Sprintf("app=a%d", k%20), fmt.Sprintf("team=t%d", k%10)),
				pods("app in (a1,a2)", "")), tcp(uint16(80+k)))},
			EgressRules: []spec.Rule{rule(peers(pods("tier=t1", fmt.Sprintf("team in (t%d)", (k+1)%10))), udp(53))},
		}
		if k%2 == 0 {
			p.Networks = []string{netA, netB}
		}
		if k%5 == 0 {
			p.EgressRules = append(p.EgressRules, rule(peers(pods(fmt.Sprintf("app=a%d", k%20), "{}")), named("http", spec.TCP)))
		}
		policies = append(policies, p)
	}
	local := v.pods["ns-0"][0]
	return local, []Interface{{IfName: "net1", Network: netA}, {IfName: "net2", Network: netB}}, policies, v
}

func BenchmarkRules(b *testing.B) {
	local, ifaces, policies, v := genCluster(100, 100)
	b.ReportAllocs()
	var rs []Ruleset
	for b.Loop() {
		rs = Rules(local, ifaces, policies, v)
	}
	if len(rs) != 2 {
		b.Fatalf("Rules: %d rulesets, want 2", len(rs))
	}
	prefixes := 0
	for _, r := range rs {
		for _, d := range []*Direction{r.Ingress, r.Egress} {
			for _, a := range d.Allow {
				prefixes += len(a.Addrs)
			}
		}
	}
	b.ReportMetric(float64(prefixes), "prefixes")
}

// BenchmarkRulesBatch is one event's work on a node of 100 pods (those of ns-0, 20 of them
// selected by the 50 policies): the rules of every pod, sharing an Index.
func BenchmarkRulesBatch(b *testing.B) {
	_, ifaces, policies, v := genCluster(100, 100)
	b.ReportAllocs()
	selected := 0
	for b.Loop() {
		x := NewIndex(v)
		selected = 0
		for _, pod := range v.pods["ns-0"] {
			if rs := Rules(pod, ifaces, policies, x); len(rs) > 0 {
				selected++
			}
		}
	}
	if selected != 20 {
		b.Fatalf("Rules: %d pods selected, want 20", selected)
	}
}

// TestIndexGivesTheSameRules checks that an Index shared by the pods of a batch changes
// nothing in their rules, and that each pod's rules are its own (scribbling over one
// result leaves the next intact).
func TestIndexGivesTheSameRules(t *testing.T) {
	_, ifaces, policies, v := genCluster(20, 30)
	x := NewIndex(v)
	selected := 0
	for _, pod := range v.pods["ns-0"] {
		alone := Rules(pod, ifaces, policies, v)
		shared := Rules(pod, ifaces, policies, x)
		if !reflect.DeepEqual(shared, alone) {
			t.Fatalf("Rules of %s with an Index:\n got %s\nwant %s", pod.Name, dump(shared), dump(alone))
		}
		for _, rs := range shared {
			selected++
			for _, d := range []*Direction{rs.Ingress, rs.Egress} {
				for i := range d.Allow {
					clear(d.Allow[i].Addrs)
					clear(d.Allow[i].Ports)
				}
			}
		}
	}
	if selected == 0 {
		t.Fatal("Rules: no pod selected")
	}
}

// TestIndexConcurrentUse shares one Index between goroutines (run with -race).
func TestIndexConcurrentUse(t *testing.T) {
	_, ifaces, policies, v := genCluster(10, 20)
	want := map[*Pod][]Ruleset{}
	for _, pod := range v.pods["ns-0"] {
		want[pod] = Rules(pod, ifaces, policies, v)
	}
	x := NewIndex(v)
	var wg sync.WaitGroup
	errs := make(chan string, 4*len(want))
	for range 4 {
		wg.Go(func() {
			for _, pod := range v.pods["ns-0"] {
				if got := Rules(pod, ifaces, policies, x); !Equal(got, want[pod]) {
					errs <- pod.Name
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for name := range errs {
		t.Errorf("Rules of %s with a shared Index differ from its rules alone", name)
	}
}

// TestDeterministic shuffles everything whose order carries no meaning — policies,
// namespaces, pods, peers, ports — and expects the same result, DeepEqual.
func TestDeterministic(t *testing.T) {
	local, ifaces, policies, v := genCluster(20, 30)
	want := Rules(local, ifaces, policies, v)
	if len(want) != 2 || len(want[0].Ingress.Allow) == 0 || len(want[1].Egress.Allow) == 0 {
		t.Fatalf("Rules: a result too thin to test: %s", dump(want))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		got := Rules(local, ifaces, shufflePolicies(rng, policies), shuffleView(rng, v))
		if !reflect.DeepEqual(got, want) || !Equal(got, want) {
			t.Fatalf("Rules after shuffling:\n got %s\nwant %s", dump(got), dump(want))
		}
	}
}

func shufflePolicies(rng *rand.Rand, policies []*spec.Policy) []*spec.Policy {
	out := make([]*spec.Policy, len(policies))
	for i, p := range policies {
		c := *p
		c.IngressRules, c.EgressRules = shuffleRules(rng, p.IngressRules), shuffleRules(rng, p.EgressRules)
		out[i] = &c
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func shuffleRules(rng *rand.Rand, rules []spec.Rule) []spec.Rule {
	out := make([]spec.Rule, len(rules))
	for i, r := range rules {
		out[i] = spec.Rule{Peers: slices.Clone(r.Peers), Ports: slices.Clone(r.Ports)}
		rng.Shuffle(len(out[i].Peers), func(a, b int) { out[i].Peers[a], out[i].Peers[b] = out[i].Peers[b], out[i].Peers[a] })
		rng.Shuffle(len(out[i].Ports), func(a, b int) { out[i].Ports[a], out[i].Ports[b] = out[i].Ports[b], out[i].Ports[a] })
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func shuffleView(rng *rand.Rand, v *view) *view {
	out := &view{namespaces: v.namespaces, order: slices.Clone(v.order), pods: map[string][]*Pod{}}
	rng.Shuffle(len(out.order), func(i, j int) { out.order[i], out.order[j] = out.order[j], out.order[i] })
	for ns, pods := range v.pods {
		out.pods[ns] = slices.Clone(pods)
		rng.Shuffle(len(pods), func(i, j int) { out.pods[ns][i], out.pods[ns][j] = out.pods[ns][j], out.pods[ns][i] })
	}
	return out
}
