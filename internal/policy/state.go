package policy

import (
	"maps"
	"slices"

	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
)

// state is what the controller knows: policies, namespaces, this node's sandboxes and the
// pods of other nodes. Its methods are called with Controller.mu held; the ones named for
// an event return the sandboxes whose rules it can change.
type state struct {
	policies map[string]*spec.Policy // by "namespace/name"
	byNS     map[string][]*spec.Policy
	// namespaces' labels, by name
	namespaces map[string]map[string]string
	// peers are the pods of other nodes, by namespace and name
	peers map[string]map[string]*compile.Pod
	// sandboxes of this node by container ID, and their IDs by namespace
	sandboxes map[string]*sandbox
	localNS   map[string]map[string]bool
	// pods caches Pods' answer by namespace until something in it changes
	pods map[string][]*compile.Pod
	// index remembers what compile works out from this state, for every sandbox an event
	// reprograms, until the state changes (changed)
	index *compile.Index
}

// view is what rules are computed from: an index of the state as it is now.
func (s *state) view() *compile.Index {
	if s.index == nil {
		s.index = compile.NewIndex(s)
	}
	return s.index
}

// changed drops what was worked out from the state as it was.
func (s *state) changed() { s.index = nil }

func newState() *state {
	return &state{policies: map[string]*spec.Policy{}, byNS: map[string][]*spec.Policy{},
		namespaces: map[string]map[string]string{}, peers: map[string]map[string]*compile.Pod{},
		sandboxes: map[string]*sandbox{}, localNS: map[string]map[string]bool{}, pods: map[string][]*compile.Pod{}}
}

// NamespaceLabels implements compile.View.
func (s *state) NamespaceLabels(name string) (map[string]string, bool) {
	l, ok := s.namespaces[name]
	return l, ok
}

// Namespaces implements compile.View.
func (s *state) Namespaces() []string { return slices.Sorted(maps.Keys(s.namespaces)) }

// Pods implements compile.View: the pods of other nodes and this node's, a pod with two
// sandboxes (one being replaced) once, with the addresses of both.
func (s *state) Pods(namespace string) []*compile.Pod {
	if p, ok := s.pods[namespace]; ok {
		return p
	}
	var out []*compile.Pod
	for _, p := range s.peers[namespace] {
		out = append(out, p)
	}
	for id := range s.localNS[namespace] {
		out = append(out, s.sandboxes[id].pod)
	}
	s.pods[namespace] = out
	return out
}

// policiesIn are the policies of namespace.
func (s *state) policiesIn(namespace string) []*spec.Policy { return s.byNS[namespace] }

// selected are the sandboxes that any of ps selects (ps nil entries skipped).
func (s *state) selected(ps ...*spec.Policy) []string {
	var out []string
	for _, p := range ps {
		if p == nil {
			continue
		}
		for id := range s.localNS[p.Namespace] {
			if compile.Selects(p, s.sandboxes[id].pod) {
				out = append(out, id)
			}
		}
	}
	return out
}

// setPolicy puts p in place of old (either nil for a creation or a deletion).
func (s *state) setPolicy(key string, old, p *spec.Policy) []string {
	s.changed()
	ns := ""
	if p != nil {
		ns = p.Namespace
		s.policies[key] = p
	} else if old != nil {
		ns = old.Namespace
		delete(s.policies, key)
	}
	list := slices.DeleteFunc(slices.Clone(s.byNS[ns]), func(q *spec.Policy) bool { return q == old || q.Namespace+"/"+q.Name == key })
	if p != nil {
		list = append(list, p)
	}
	if len(list) == 0 {
		delete(s.byNS, ns)
	} else {
		s.byNS[ns] = list
	}
	return s.selected(old, p)
}

// setNamespace records a namespace's labels (cur nil: deleted).
func (s *state) setNamespace(name string, cur map[string]string, gone bool) []string {
	s.changed()
	old := s.namespaces[name]
	if gone {
		delete(s.namespaces, name)
	} else {
		if cur == nil {
			cur = map[string]string{}
		}
		s.namespaces[name] = cur
	}
	var out []string
	for _, p := range s.policies {
		if compile.UsesNamespace(p, name, old, cur) {
			out = append(out, s.selected(p)...)
		}
	}
	return out
}

// peersOf are the sandboxes whose rules change when pod (before or after a change) does:
// those selected by a policy that may take it as a peer.
func (s *state) peersOf(pods ...*compile.Pod) []string {
	var out []string
	for _, p := range s.policies {
		for _, pod := range pods {
			if pod == nil {
				continue
			}
			if compile.MayPeer(p, pod, s.namespaces[pod.Namespace]) {
				out = append(out, s.selected(p)...)
				break
			}
		}
	}
	return out
}

// setPeer records a pod of another node (cur nil: gone).
func (s *state) setPeer(namespace, name string, cur *compile.Pod) []string {
	s.changed()
	old := s.peers[namespace][name]
	if cur == nil {
		delete(s.peers[namespace], name)
		if len(s.peers[namespace]) == 0 {
			delete(s.peers, namespace)
		}
	} else {
		if s.peers[namespace] == nil {
			s.peers[namespace] = map[string]*compile.Pod{}
		}
		s.peers[namespace][name] = cur
	}
	delete(s.pods, namespace)
	return s.peersOf(old, cur)
}

// dropPeers forgets every pod of other nodes (their cache stopped).
func (s *state) dropPeers() {
	s.changed()
	s.peers = map[string]map[string]*compile.Pod{}
	s.pods = map[string][]*compile.Pod{}
}

// setSandbox records a sandbox of this node (sb nil: gone), and returns it with the
// sandboxes whose rules it changes.
func (s *state) setSandbox(id string, sb *sandbox) []string {
	s.changed()
	old := s.sandboxes[id]
	var oldPod, curPod *compile.Pod
	if old != nil {
		oldPod = old.pod
		delete(s.localNS[old.pod.Namespace], id)
		delete(s.pods, old.pod.Namespace)
	}
	if sb == nil {
		delete(s.sandboxes, id)
		return s.peersOf(oldPod)
	}
	if old != nil && !changedSandbox(old, sb) {
		sb.programmed, sb.stale = old.programmed, old.stale
	}
	curPod = sb.pod
	s.sandboxes[id] = sb
	if s.localNS[curPod.Namespace] == nil {
		s.localNS[curPod.Namespace] = map[string]bool{}
	}
	s.localNS[curPod.Namespace][id] = true
	delete(s.pods, curPod.Namespace)
	return append(s.peersOf(oldPod, curPod), id)
}

// changedSandbox tells whether the table of old may not fit cur (another netns).
func changedSandbox(old, cur *sandbox) bool { return old.netns != cur.netns }

// sandboxesOfPod are the IDs of the sandboxes of the pod with uid.
func (s *state) sandboxesOfPod(uid string) []string {
	var out []string
	for id, sb := range s.sandboxes {
		if sb.uid == uid {
			out = append(out, id)
		}
	}
	return out
}

// needsPeers tells whether some policy that applies to a network selects peers by labels,
// or names ports that peers resolve: only then are the pods of other nodes watched.
func (s *state) needsPeers() bool {
	for _, p := range s.policies {
		if len(p.Networks) > 0 && selectsPeers(p) {
			return true
		}
	}
	return false
}

func selectsPeers(p *spec.Policy) bool {
	for _, rules := range [][]spec.Rule{p.IngressRules, p.EgressRules} {
		for _, r := range rules {
			for _, peer := range r.Peers {
				if peer.Block == nil {
					return true
				}
			}
		}
	}
	for _, r := range p.EgressRules {
		for _, port := range r.Ports {
			if port.Name != "" {
				return true
			}
		}
	}
	return false
}
