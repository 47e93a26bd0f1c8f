package shim

import (
	"strconv"
	"strings"

	"github.com/multinet/multinet/internal/cniapi/wire"
)

// netConf is what the shim reads of the network configuration on stdin; the daemon reads
// the rest.
type netConf struct {
	Name       string
	CNIVersion string
	Socket     string // where the daemon listens; empty: wire.DefaultSocket
}

// parseConf checks the configuration as skel does (one JSON object with a valid name) and
// reads its fields. Keys match case-insensitively and the last one wins, as encoding/json
// decodes them.
func (inv *invocation) parseConf(stdin []byte) (netConf, error) {
	var c netConf
	fields := map[string]*string{"name": &c.Name, "cniversion": &c.CNIVersion, "socket": &c.Socket}
	err := wire.Object(stdin, func(key string, value []byte) error {
		dst := fields[strings.ToLower(key)]
		if dst == nil || string(value) == "null" {
			return nil
		}
		s, err := wire.String(value)
		if err != nil {
			return &keyError{key: key}
		}
		*dst = s
		return nil
	})
	if err != nil {
		return c, inv.fail(errDecodingFailure, "cannot read the network configuration on stdin: "+err.Error())
	}
	if c.Name == "" {
		return c, inv.fail(errInvalidNetworkConfig, "the network configuration on stdin has no name")
	}
	if !validName(c.Name) {
		return c, inv.fail(errInvalidNetworkConfig, "network name "+strconv.Quote(c.Name)+
			" has invalid characters (letters, digits, '_', '.' and '-', starting with a letter or digit)")
	}
	return c, nil
}

// keyError: a field the shim reads is not a string.
type keyError struct{ key string }

func (e *keyError) Error() string { return "field " + strconv.Quote(e.key) + " is not a string" }
