package selection

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzSelection checks that Parse never panics, that every rejection is an
// *Error, and that every accepted result survives a round trip through the
// JSON form unchanged.
func FuzzSelection(f *testing.F) {
	for _, seed := range []string{
		"", "net-a", "other/net-b@eth9", " a , b/c@d ", "a,,b", "a/b/c", "a@b@c", "a@", "/a",
		"net1/storage@this-name-is-too-long", "{}", "[]", "[null]", `[{"name":"a"`,
		`[{"name":"a","namespace":"b","interface":"eth1","ips":["10.0.0.1/24","fd00::1"],` +
			`"mac":"02:00:00:00:00:01","portMappings":[{"hostPort":80,"containerPort":8080}],` +
			`"bandwidth":{"ingressRate":1},"cni-args":{"k":["v",1,true,null]},"default-route":["10.0.0.254"]}]`,
		`[{"name":"a","default-route":["10.0.0.1"]},{"name":"b","default-route":["10.0.0.2"]}]`,
		`[{"name":"a","interface":"x"},{"name":"b","interface":"x"}]`,
		`[{"name":"a","mac":"01:00:5e:00:00:01"}]`, `[{"name":"a","default-route":[""]}]`,
		`[{"name":"a","portMappings":[null]}]`, `[{"name":"a","bandwidth":{"egressRate":-1}}]`,
		`[{"name":"a","ips":["x"],"ipam-claim-reference":"c"}]`,
		`[{"name":"a","ips":[],"portMappings":[],"default-route":[],"cni-args":{}}]`,
	} {
		f.Add(seed, "default")
	}
	f.Add("net-a", "")
	f.Add("net-a", "Bad Namespace")
	f.Fuzz(func(t *testing.T, value, podNamespace string) {
		elems, err := Parse(value, podNamespace)
		if err != nil {
			var serr *Error
			if !errors.As(err, &serr) {
				t.Fatalf("Parse(%q) error %v is not an *Error", value, err)
			}
			return
		}
		if len(elems) == 0 {
			return
		}
		encoded, err := json.Marshal(elems)
		if err != nil {
			t.Fatalf("marshal %+v: %v", elems, err)
		}
		again, err := Parse(string(encoded), podNamespace)
		if err != nil {
			t.Fatalf("Parse(%q) accepted, but its JSON form %s is rejected: %v", value, encoded, err)
		}
		if !reflect.DeepEqual(again, elems) {
			t.Fatalf("round trip of %q changed it:\n got %+v\nwant %+v", value, again, elems)
		}
	})
}
