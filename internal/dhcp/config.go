package dhcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/multinet/multinet/internal/cniapi"
)

// Router modes: what the router option (3) becomes on the pod's interface.
const (
	RouterIgnore  = "ignore"  // neither routed nor reported: the cluster default route stays on eth0
	RouterSubnet  = "subnet"  // reported as the interface's gateway; only the lease's subnet is routed there
	RouterDefault = "default" // the pod's default route goes via the router
)

// Defaults of the ipam settings.
const (
	DefaultTimeout = 10 * time.Second
	DefaultRetries = 3
	MaxTimeout     = 2 * time.Minute
)

// Conf is the "ipam" section of a network that uses multinet-dhcp. It also accepts the
// fields of the reference "dhcp" IPAM plugin (provide, request, priority, daemonSocketPath),
// so a NAD switches by changing only its type.
type Conf struct {
	Type       string         `json:"type"`
	Socket     string         `json:"socket,omitempty"`     // multinetd's socket, when not run by multinetd
	Router     string         `json:"router,omitempty"`     // ignore (default), subnet or default
	Timeout    Duration       `json:"timeout,omitempty"`    // time to get a lease on ADD
	Retries    int            `json:"retries,omitempty"`    // DHCPDISCOVERs sent within Timeout
	ClientID   string         `json:"clientID,omitempty"`   // fixed client identifier; default: from pod UID and interface
	Hostname   string         `json:"hostname,omitempty"`   // default: the pod's name
	Routes     []*types.Route `json:"routes,omitempty"`     // extra routes; gw defaults to the router (subnet/default modes)
	RenewAfter Duration       `json:"renewAfter,omitempty"` // renew this long after each lease instead of at T1 (tests, debugging)
	Priority   int            `json:"priority,omitempty"`   // metric of the routes (reference plugin's field)
	Provide    []Provide      `json:"provide,omitempty"`    // options sent to the server (reference plugin's field)
	Request    []RequestOpt   `json:"request,omitempty"`    // options asked of the server (reference plugin's field)

	DaemonSocketPath string `json:"daemonSocketPath,omitempty"` // reference plugin's daemon socket: accepted, unused
}

// Provide is an option sent to the server: a fixed value or the value of a CNI_ARGS key.
type Provide struct {
	Option  string `json:"option"`
	Value   string `json:"value,omitempty"`
	FromArg string `json:"fromArg,omitempty"`
}

// RequestOpt is an option added to the parameter request list.
type RequestOpt struct {
	Option      string `json:"option"`
	SkipDefault bool   `json:"skipDefault,omitempty"` // accepted; multinet always asks for what it applies
}

// Duration is a time.Duration written as "10s" in JSON (a bare number is seconds).
type Duration struct{ time.Duration }

// UnmarshalJSON reads "10s", "1m30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err := json.Unmarshal(b, &secs); err != nil {
			return fmt.Errorf("duration %s: want \"10s\" or a number of seconds", b)
		}
		d.Duration = time.Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// netConf is what the lease manager reads of the delegate's network configuration.
type netConf struct {
	CNIVersion string          `json:"cniVersion"`
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Bridge     string          `json:"bridge"` // the bridge plugin's host bridge
	IPAM       json.RawMessage `json:"ipam"`
}

// request is one decoded IPAM invocation.
type request struct {
	*cniapi.Request
	version  string
	conf     Conf
	args     map[string]string // CNI_ARGS
	pod      podRef
	network  string // the NAD (multinet's MULTINET_NETWORK), else the conf's name
	confName string
	bridge   string // host bridge of a bridge network
}

type podRef struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	UID       string `json:"uid,omitempty"`
}

func (p podRef) String() string {
	if p.Name == "" {
		return "(no pod)"
	}
	return p.Namespace + "/" + p.Name
}

// errBadConf marks configuration faults (CNI code 7: invalid network config).
var errBadConf = errors.New("invalid multinet-dhcp configuration")

// decode reads the IPAM request: the delegate's conf from stdin and CNI_ARGS.
func decode(in *cniapi.Request) (*request, error) {
	var nc netConf
	if err := json.Unmarshal(in.Config, &nc); err != nil {
		return nil, fmt.Errorf("%w: network configuration: %w", errBadConf, err)
	}
	req := &request{Request: in, version: nc.CNIVersion, args: in.ArgsMap(), network: nc.Name, confName: nc.Name}
	if n := req.args["MULTINET_NETWORK"]; n != "" {
		req.network = n
	}
	if len(nc.IPAM) == 0 || string(nc.IPAM) == "null" {
		return nil, fmt.Errorf("%w: network %q has no ipam section", errBadConf, req.network)
	}
	if err := req.conf.decode(nc.IPAM); err != nil {
		return nil, fmt.Errorf("%w: network %q: ipam: %w", errBadConf, req.network, err)
	}
	if nc.Type == "bridge" {
		req.bridge = nc.Bridge
		if req.bridge == "" {
			req.bridge = "cni0" // the bridge plugin's default
		}
	}
	req.pod = podRef{Namespace: req.args["K8S_POD_NAMESPACE"], Name: req.args["K8S_POD_NAME"], UID: req.args["K8S_POD_UID"]}
	return req, nil
}

// decode reads the ipam section and validates it. A key that is none of Conf's fields is an
// error, not ignored: a misspelt "rotuer" would otherwise quietly leave the pod without the
// route it asks for. Keys match as encoding/json matches them, regardless of case.
func (c *Conf) decode(raw json.RawMessage) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return err
	}
	var unknown []string
	for k := range keys {
		if !slices.ContainsFunc(confFields, func(f string) bool { return strings.EqualFold(f, k) }) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("unknown key %s (multinet-dhcp reads %s)", strings.Join(unknown, ", "), strings.Join(confFields, ", "))
	}
	if err := json.Unmarshal(raw, c); err != nil {
		return err
	}
	return c.validate()
}

// confFields are the JSON names of Conf's fields.
var confFields = func() []string {
	t := reflect.TypeFor[Conf]()
	out := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}()

// validate checks the settings and fills in defaults.
func (c *Conf) validate() error {
	switch c.Router {
	case "":
		c.Router = RouterIgnore
	case RouterIgnore, RouterSubnet, RouterDefault:
	default:
		return fmt.Errorf("router %q: want ignore, subnet or default", c.Router)
	}
	if c.Timeout.Duration <= 0 {
		c.Timeout.Duration = DefaultTimeout
	}
	if c.Timeout.Duration > MaxTimeout {
		return fmt.Errorf("timeout %s: at most %s (an ADD holds a delegate slot meanwhile)", c.Timeout.Duration, MaxTimeout)
	}
	if c.Retries <= 0 {
		c.Retries = DefaultRetries
	}
	if c.Retries > 10 {
		return fmt.Errorf("retries %d: at most 10", c.Retries)
	}
	for _, p := range c.Provide {
		if _, err := optionCode(p.Option); err != nil {
			return fmt.Errorf("provide: %w", err)
		}
	}
	for _, r := range c.Request {
		if _, err := optionCode(r.Option); err != nil {
			return fmt.Errorf("request: %w", err)
		}
	}
	return nil
}

var optionNames = map[string]dhcpv4.OptionCode{
	"dhcp-client-identifier":  dhcpv4.OptionClientIdentifier,
	"subnet-mask":             dhcpv4.OptionSubnetMask,
	"routers":                 dhcpv4.OptionRouter,
	"host-name":               dhcpv4.OptionHostName,
	"user-class":              dhcpv4.OptionUserClassInformation,
	"vendor-class-identifier": dhcpv4.OptionClassIdentifier,
}

// optionCode reads an option as the reference plugin names it, or as a number.
func optionCode(name string) (dhcpv4.OptionCode, error) {
	if c, ok := optionNames[name]; ok {
		return c, nil
	}
	n, err := strconv.ParseUint(name, 10, 8)
	if err != nil || n == 0 || n == 255 {
		return nil, fmt.Errorf("option %q: want a name of dhcp-options(5) or a number 1-254", name)
	}
	return dhcpv4.GenericOptionCode(n), nil
}
