package spec

import (
	"strings"
	"testing"
)

// TestNetworks: the policy-for annotation's entries, resolved in the policy's namespace.
func TestNetworks(t *testing.T) {
	for _, tc := range []struct {
		name, value, namespace string
		want                   string // networks joined by ","
		wantErr                string // a part of the error
	}{
		{name: "empty", value: "", namespace: "team-a"},
		{name: "blank", value: "  \t", namespace: "team-a"},
		{name: "bare name", value: "storage", namespace: "team-a", want: "team-a/storage"},
		{name: "namespaced", value: "net/storage", namespace: "team-a", want: "net/storage"},
		{name: "spaces, order, duplicates", value: " b , net/a,b,team-a/b ", namespace: "team-a", want: "net/a,team-a/b"},
		{name: "dotted name", value: "storage.v2", namespace: "team-a", want: "team-a/storage.v2"},
		{name: "trailing comma", value: "a,", namespace: "team-a", wantErr: "entry 2: empty"},
		{name: "only a comma", value: ",", namespace: "team-a", wantErr: "entry 1: empty"},
		{name: "three parts", value: "a/b/c", namespace: "team-a", wantErr: `entry 1: "a/b/c": not name nor namespace/name`},
		{name: "empty namespace", value: "/b", namespace: "team-a", wantErr: `entry 1: "/b": namespace "": a lowercase RFC 1123 label`},
		{name: "namespace with a dot", value: "a.b/c", namespace: "team-a", wantErr: `entry 1: "a.b/c": namespace "a.b": must not contain dots`},
		{name: "upper case", value: "ok,Storage", namespace: "team-a", wantErr: `entry 2: "Storage": name "Storage": a lowercase RFC 1123 subdomain`},
		{name: "every bad entry", value: "a/b/c,,ok", namespace: "team-a", wantErr: `entry 1: "a/b/c": not name nor namespace/name; entry 2: empty`},
		{name: "bare name without a namespace", value: "storage", namespace: "", wantErr: `entry 1: "storage": no namespace to find it in`},
		{name: "namespaced without a namespace", value: "net/storage", namespace: "", want: "net/storage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nets, err := Networks(tc.value, tc.namespace)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one holding %q", err, tc.wantErr)
				}
				if nets != nil {
					t.Errorf("networks %q with an error", nets)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(nets, ","); got != tc.want {
				t.Errorf("networks %q, want %q", got, tc.want)
			}
		})
	}
}
