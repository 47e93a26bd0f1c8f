package dhcp

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// identityFor is who the pod's interface is to the server: the client identifier (configured,
// else derived from the pod UID and interface, so a restarted sandbox keeps its address), the
// pod name as host name, and the reference plugin's "provide" and "request" options.
func identityFor(req *request) (identity, error) {
	id := identity{Hostname: req.conf.Hostname}
	if id.Hostname == "" {
		id.Hostname = req.pod.Name
	}
	if req.conf.ClientID != "" {
		id.ClientID = append([]byte{0}, req.conf.ClientID...)
	} else {
		owner := req.pod.UID
		if owner == "" {
			owner = req.ContainerID
		}
		id.ClientID = clientID(owner, req.IfName)
	}
	for _, p := range req.conf.Provide {
		v := p.Value
		if p.FromArg != "" {
			v = req.args[p.FromArg]
		}
		if v == "" {
			return id, fmt.Errorf("provide %s: no value (CNI_ARGS has no %q)", p.Option, p.FromArg)
		}
		code, _ := optionCode(p.Option) // validated with the conf
		switch code.Code() {
		case dhcpv4.OptionHostName.Code():
			id.Hostname = v
		case dhcpv4.OptionClientIdentifier.Code():
			id.ClientID = []byte(v)
		default:
			if id.Extra == nil {
				id.Extra = map[uint8][]byte{}
			}
			id.Extra[code.Code()] = []byte(v)
		}
	}
	for _, r := range req.conf.Request {
		code, _ := optionCode(r.Option)
		id.Request = append(id.Request, code.Code())
	}
	return id, nil
}

// clientID is an RFC 4361 client identifier: type 255, an IAID from the interface name and a
// DUID-UUID (RFC 6355) from owner (the pod UID; anything else is hashed into one).
func clientID(owner, ifname string) []byte {
	h := fnv.New32a()
	_, _ = h.Write([]byte(ifname))
	out := binary.BigEndian.AppendUint32([]byte{255}, h.Sum32())
	out = append(out, 0, 4) // DUID type 4: UUID
	return append(out, uuidBytes(owner)...)
}

func uuidBytes(s string) []byte {
	if b, err := hex.DecodeString(strings.ReplaceAll(s, "-", "")); err == nil && len(b) == 16 {
		return b
	}
	sum := sha256.Sum256([]byte(s))
	return sum[:16]
}
