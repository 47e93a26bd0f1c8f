package daemon

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/multinet/multinet/internal/dra/nics"
)

// TestNamespaceSettings: Multus' keys are accepted as Multus writes them (globalNamespaces as
// a comma-separated string) and as a list; isolation is off unless asked for.
func TestNamespaceSettings(t *testing.T) {
	cases := []struct {
		name, file string
		flags      []string
		isolation  bool
		globals    []string
		wantErr    string
	}{
		{name: "default: off, none", file: "logLevel: info\n"},
		{name: "multus form", file: `{"namespaceIsolation": true, "globalNamespaces": "default, net-ns"}`,
			isolation: true, globals: []string{"default", "net-ns"}},
		{name: "list form", file: "namespaceIsolation: true\nglobalNamespaces: [a, b]\n",
			isolation: true, globals: []string{"a", "b"}},
		{name: "flags win", file: "namespaceIsolation: false\nglobalNamespaces: [a]\n",
			flags: []string{"--namespace-isolation", "--global-namespaces", "x,y"}, isolation: true, globals: []string{"x", "y"}},
		{name: "not a list", file: "globalNamespaces: {a: b}\n", wantErr: "globalNamespaces"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, path, err := parseWithFile(t, c.file, c.flags...)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Parse = %v, want an error naming %q and the file", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.NamespaceIsolation != c.isolation || !reflect.DeepEqual([]string(o.GlobalNamespaces), c.globals) {
				t.Errorf("namespaceIsolation %v globalNamespaces %q, want %v %q", o.NamespaceIsolation, o.GlobalNamespaces, c.isolation, c.globals)
			}
		})
	}
}

// TestFlagsWinOverFile: a flag given on the command line keeps its value although the file
// sets the same key (the file is read after the flags, into the same fields).
func TestFlagsWinOverFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "multinetd.yaml")
	if err := os.WriteFile(path, []byte("maxParallel: 3\nlogLevel: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := Parse([]string{"--max-parallel", "5", "--config", path, "--node-name", "n"})
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxParallel != 5 || o.LogLevel != "warn" {
		t.Errorf("maxParallel %d logLevel %q, want 5 (flag) and warn (file)", o.MaxParallel, o.LogLevel)
	}
}

// TestParallelAttachSetting: on by default; the file's parallelAttach: false turns it off, and
// the flag given on the command line wins over the file.
func TestParallelAttachSetting(t *testing.T) {
	cases := []struct {
		name, file string
		flags      []string
		want       bool
	}{
		{name: "default on", file: "logLevel: info\n", want: true},
		{name: "file off", file: "parallelAttach: false\n", want: false},
		{name: "flag off", file: "logLevel: info\n", flags: []string{"--parallel-attach=false"}, want: false},
		{name: "flag wins over file", file: "parallelAttach: false\n", flags: []string{"--parallel-attach"}, want: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, _, err := parseWithFile(t, c.file, c.flags...)
			if err != nil {
				t.Fatal(err)
			}
			if o.ParallelAttach != c.want {
				t.Errorf("parallelAttach %v, want %v", o.ParallelAttach, c.want)
			}
		})
	}
}

// TestDelegateGOMAXPROCSSetting: the plugins run on one P by default; the file's 0 leaves
// their environment alone; a negative value is refused, naming the flag.
func TestDelegateGOMAXPROCSSetting(t *testing.T) {
	cases := []struct {
		name, file string
		flags      []string
		want       int
		wantErr    string
	}{
		{name: "default 1", file: "logLevel: info\n", want: 1},
		{name: "file 0", file: "delegateGOMAXPROCS: 0\n", want: 0},
		{name: "flag wins over file", file: "delegateGOMAXPROCS: 0\n", flags: []string{"--delegate-gomaxprocs", "2"}, want: 2},
		{name: "negative", file: "logLevel: info\n", flags: []string{"--delegate-gomaxprocs=-1"}, wantErr: "--delegate-gomaxprocs must be 0 or more, got -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, _, err := parseWithFile(t, c.file, c.flags...)
			if c.wantErr != "" {
				if err == nil || err.Error() != c.wantErr {
					t.Fatalf("Parse = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.DelegateGOMAXPROCS != c.want {
				t.Errorf("delegateGOMAXPROCS %d, want %d", o.DelegateGOMAXPROCS, c.want)
			}
		})
	}
}

// TestNetworkStatusSettings: the resync, give-up and drain times, from the file or the flags.
func TestNetworkStatusSettings(t *testing.T) {
	cases := []struct {
		name, file            string
		flags                 []string
		resync, giveUp, drain time.Duration
		wantErr               string
	}{
		{name: "defaults", file: "logLevel: info\n", resync: 5 * time.Minute, giveUp: 10 * time.Minute, drain: 10 * time.Second},
		{name: "file", file: "resyncInterval: 1m\nstatusGiveUpAfter: 30s\nstatusDrainTimeout: 20s\n",
			resync: time.Minute, giveUp: 30 * time.Second, drain: 20 * time.Second},
		{name: "flags win over file", file: "resyncInterval: 1m\n",
			flags:  []string{"--resync-interval", "2s", "--status-give-up-after", "1s", "--status-drain-timeout", "0s"},
			resync: 2 * time.Second, giveUp: time.Second},
		{name: "resync below the informer's minimum", file: "resyncInterval: 500ms\n", wantErr: "--resync-interval must be at least 1s"},
		{name: "no give-up", file: "statusGiveUpAfter: 0s\n", wantErr: "--status-give-up-after positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, ok := parseCase(t, c.file, c.wantErr, c.flags...)
			if !ok {
				return
			}
			if o.ResyncInterval.Duration != c.resync || o.StatusGiveUpAfter.Duration != c.giveUp || o.StatusDrainTimeout.Duration != c.drain {
				t.Errorf("resync %v give-up %v drain %v, want %v %v %v", o.ResyncInterval.Duration, o.StatusGiveUpAfter.Duration,
					o.StatusDrainTimeout.Duration, c.resync, c.giveUp, c.drain)
			}
		})
	}
}

// TestDRASettings: claims are resolved by default (--dra=false turns it off); the NIC driver
// is off without a draNICs section, and with one gets its defaults and its directories under
// the kubelet's root dir; a section, a root dir or a socket path the driver cannot use is
// refused at start, naming what is wrong.
func TestDRASettings(t *testing.T) {
	long := "/" + strings.Repeat("k", 80)
	cases := []struct {
		name, file          string
		flags               []string
		dra                 bool
		driver, root        string // driver "": the NIC driver is off
		registrar, plugin   string
		excludeDefaultRoute bool
		wantErr             string
	}{
		{name: "defaults: claims on, driver off", file: "logLevel: info\n", dra: true, root: "/var/lib/kubelet"},
		{name: "dra off in the file", file: "dra: false\n", root: "/var/lib/kubelet"},
		{name: "flag wins over file", file: "dra: false\n", flags: []string{"--dra"}, dra: true, root: "/var/lib/kubelet"},
		{name: "empty section is off", file: "draNICs:\n", dra: true, root: "/var/lib/kubelet"},
		{name: "driver with defaults", file: "draNICs:\n  include: [\"eth[1-9]*\"]\n  resourceName: example.com/nic\n",
			dra: true, root: "/var/lib/kubelet", driver: nics.DefaultDriver, excludeDefaultRoute: true,
			registrar: "/var/lib/kubelet/plugins_registry", plugin: "/var/lib/kubelet/plugins/" + nics.DefaultDriver},
		{name: "root dir and driver name", file: "kubeletRootDir: /data/kubelet\ndraNICs: {driver: nic.example.com, include: [ens*], excludeDefaultRoute: false}\n",
			dra: true, root: "/data/kubelet", driver: "nic.example.com",
			registrar: "/data/kubelet/plugins_registry", plugin: "/data/kubelet/plugins/nic.example.com"},
		{name: "root dir flag wins", file: "kubeletRootDir: /data/kubelet\ndraNICs: {include: [ens*]}\n", flags: []string{"--kubelet-root-dir", "/k"},
			dra: true, root: "/k", driver: nics.DefaultDriver, excludeDefaultRoute: true,
			registrar: "/k/plugins_registry", plugin: "/k/plugins/" + nics.DefaultDriver},
		{name: "no include", file: "draNICs: {exclude: [eth0]}\n", wantErr: "draNICs: nic driver config: include"},
		{name: "bad pattern", file: "draNICs: {include: [\"eth[\"]}\n", wantErr: `draNICs: nic driver config: pattern "eth["`},
		{name: "unknown key in the section", file: "draNICs: {include: [eth1], interfaces: [eth1]}\n", wantErr: "interfaces"},
		{name: "relative root dir", file: "logLevel: info\n", flags: []string{"--kubelet-root-dir", "kubelet"},
			wantErr: `--kubelet-root-dir must be an absolute path, got "kubelet"`},
		{name: "socket path too long", file: "draNICs: {include: [eth1]}\n", flags: []string{"--kubelet-root-dir", long},
			wantErr: "draNICs: the driver's socket " + long + "/plugins_registry/" + nics.DefaultDriver + "-reg.sock is longer than 107 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, ok := parseCase(t, c.file, c.wantErr, c.flags...)
			if !ok {
				return
			}
			if o.DRA != c.dra || o.KubeletRootDir != c.root {
				t.Errorf("dra %v kubeletRootDir %q, want %v %q", o.DRA, o.KubeletRootDir, c.dra, c.root)
			}
			if c.driver == "" {
				if o.DRANICs != nil {
					t.Errorf("draNICs %+v, want the driver off", *o.DRANICs)
				}
				return
			}
			if o.DRANICs == nil {
				t.Fatal("draNICs nil, want the driver on")
			}
			registrar, plugin := o.nicDriverDirs()
			if o.DRANICs.Driver != c.driver || registrar != c.registrar || plugin != c.plugin {
				t.Errorf("driver %q dirs %q %q, want %q %q %q", o.DRANICs.Driver, registrar, plugin, c.driver, c.registrar, c.plugin)
			}
			if e := o.DRANICs.ExcludeDefaultRoute; e == nil || *e != c.excludeDefaultRoute {
				t.Errorf("excludeDefaultRoute %v, want %v", e, c.excludeDefaultRoute)
			}
		})
	}
}

// TestProfilingServesPprofOnlyWhenOn: /debug/pprof/ is off by default and, on, served beside
// the metrics handler, which keeps its own paths.
func TestProfilingServesPprofOnlyWhenOn(t *testing.T) {
	o, err := Parse([]string{"--node-name", "n"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Profiling {
		t.Fatal("profiling is on by default")
	}
	if o, err = Parse([]string{"--node-name", "n", "--profiling"}); err != nil || !o.Profiling {
		t.Fatalf("--profiling: %v, profiling %v", err, o.Profiling)
	}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics")) })
	for _, c := range []struct {
		on         bool
		path, want string
	}{
		{false, "/debug/pprof/", "metrics"},
		{true, "/debug/pprof/", "goroutine"},
		{true, "/metrics", "metrics"},
	} {
		rec := httptest.NewRecorder()
		withProfiling(metrics, c.on).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		if !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("profiling %v, GET %s: %q, want it to hold %q", c.on, c.path, rec.Body.String(), c.want)
		}
	}
}

// TestIdleTrimOncePerQuietPeriod: the heap is given back once the socket has been quiet for a
// tick after requests, not while they come in, and not again until new requests came.
func TestIdleTrimOncePerQuietPeriod(t *testing.T) {
	var trim idleTrim
	h := trim.count(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	serve := func(n int) {
		for range n {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/cni", nil))
		}
	}
	steps := []struct {
		requests    int
		wantTrimmed int64
	}{
		{0, 0}, // quiet from the start: nothing to give back
		{5, 0}, // requests during this tick
		{0, 5}, // quiet for a whole tick after them: trimmed
		{0, 5}, // still quiet: not again
		{3, 5},
		{2, 5},
		{0, 10},
	}
	for i, s := range steps {
		serve(s.requests)
		trim.tick()
		if trim.trimmed != s.wantTrimmed {
			t.Fatalf("tick %d: trimmed at %d requests, want %d", i, trim.trimmed, s.wantTrimmed)
		}
	}
}

// parseWithFile parses a config file holding file, with flags after --config; it returns
// the file's path too, for errors that must name it.
func parseWithFile(t *testing.T, file string, flags ...string) (Options, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "multinetd.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := Parse(append([]string{"--config", path, "--node-name", "n"}, flags...))
	return o, path, err
}

// parseCase parses the config file and flags; with wantErr, it checks that parsing fails
// saying it and returns false, else that it succeeds.
func parseCase(t *testing.T, file, wantErr string, flags ...string) (Options, bool) {
	t.Helper()
	o, _, err := parseWithFile(t, file, flags...)
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("Parse = %v, want an error saying %q", err, wantErr)
		}
		return o, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return o, true
}
