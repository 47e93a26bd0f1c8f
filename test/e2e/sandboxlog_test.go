package e2e

import (
	"slices"
	"testing"
)

// TestSandboxLineFormats: the RunPodSandbox lines of containerd 1.7 and 2.4 give the time,
// pod UID, namespace and whether the call returned; other lines give nothing. (No root
// needed.)
func TestSandboxLineFormats(t *testing.T) {
	for _, c := range []struct {
		name, line string
		want       []string // time, uid, namespace, returns
	}{
		{"1.7 start", `time="2024-05-01T10:00:00.1Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:s0,Uid:u-1,Namespace:bench,Attempt:0,}"`,
			[]string{"2024-05-01T10:00:00.1Z", "u-1", "bench", ""}},
		{"1.7 end", `time="2024-05-01T10:00:00.2Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:s0,Uid:u-1,Namespace:bench,Attempt:0,} returns sandbox id \"abc\""`,
			[]string{"2024-05-01T10:00:00.2Z", "u-1", "bench", " returns sandbox id"}},
		{"2.4 start", `time="2026-12-07T11:06:09.420560772Z" level=info msg="RunPodSandbox for name:\"crash\"  uid:\"e7fac02c\"  namespace:\"dra\""`,
			[]string{"2026-12-07T11:06:09.420560772Z", "e7fac02c", "dra", ""}},
		{"2.4 end", `time="2026-12-07T11:05:49.946116922Z" level=info msg="RunPodSandbox for name:\"multinet-5r7dm\"  uid:\"0ad01d3b\"  namespace:\"multinet\" returns sandbox id \"0511bfcb\""`,
			[]string{"2026-12-07T11:05:49.946116922Z", "0ad01d3b", "multinet", " returns sandbox id"}},
		{"2.4 second attempt", `time="2026-12-07T11:05:50Z" level=info msg="RunPodSandbox for name:\"p\"  uid:\"u\"  namespace:\"n\"  attempt:1 returns sandbox id \"x\""`,
			[]string{"2026-12-07T11:05:50Z", "u", "n", " returns sandbox id"}},
		{"failure", `time="2026-12-07T11:05:50Z" level=error msg="RunPodSandbox for name:\"p\"  uid:\"u\"  namespace:\"n\" failed, error" error="x"`,
			[]string{"2026-12-07T11:05:50Z", "u", "n", ""}},
		{"other", `time="2026-12-07T11:05:50Z" level=info msg="StopPodSandbox for \"abc\""`, nil},
	} {
		m := sandboxLine(c.line)
		var got []string
		if m != nil {
			got = m[1:]
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}
