// Package netconf turns a NetworkAttachmentDefinition's spec.config into a CNI
// network configuration list, ready for libcni.
//
// spec.config may hold a single plugin conf or a conflist; a conf becomes a
// one-plugin list. An empty spec.config names a conf file in the node's CNI
// conf dir instead (FromConfDir, the only function here that touches the
// filesystem).
//
// Defaults: a config without "name" takes the NAD's name, and one without
// "cniVersion" gets DefaultCNIVersion ("1.0.0"); both are written into the
// list's Bytes, which libcni passes on to the plugins.
//
// Every plugin "type" must be a plain binary name (ValidateType): the daemon
// runs it as root, and a namespace user who can write a NAD must not be able
// to name any host binary. The network name must not hold a path separator
// either, as libcni builds cache file paths from it. Errors say what is wrong
// without repeating the config, which may hold secrets.
package netconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/multinet/multinet/internal/ipam/pool"
)

// DefaultCNIVersion is the cniVersion given to a config that declares none.
const DefaultCNIVersion = "1.0.0"

// Resolve returns the conflist of a NAD: Parse of its spec.config, or, when
// that is empty, FromConfDir(confDir, nadName).
func Resolve(config []byte, nadName, confDir string) (*libcni.NetworkConfigList, error) {
	if len(bytes.TrimSpace(config)) == 0 {
		return FromConfDir(confDir, nadName)
	}
	return Parse(config, nadName)
}

// Parse turns a conf or a conflist into a conflist; it is a conflist when it
// has a "plugins" key. A config without "name" takes fallbackName.
func Parse(config []byte, fallbackName string) (*libcni.NetworkConfigList, error) {
	obj, err := decodeObject(config)
	if err != nil {
		return nil, err
	}
	if err := applyDefaults(obj, fallbackName); err != nil {
		return nil, err
	}
	var list *libcni.NetworkConfigList
	if _, isList := obj["plugins"]; isList {
		list, err = parseList(obj)
	} else {
		list, err = parseConf(obj)
	}
	if err != nil {
		return nil, err
	}
	if err := validateList(list); err != nil {
		return nil, err
	}
	return list, nil
}

// object is a JSON object whose values are left undecoded.
type object map[string]json.RawMessage

func decodeObject(data []byte) (object, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty config")
	}
	var obj object
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, jsonError(err)
	}
	if obj == nil { // the JSON literal null
		return nil, errors.New("config must be a JSON object, not null")
	}
	return obj, nil
}

// stringField returns obj[key] as a string; absent or null gives "".
func stringField(obj object, key string) (string, error) {
	raw, ok := obj[key]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%q must be a string", key)
	}
	return s, nil
}

// applyDefaults fills in "name" and "cniVersion" when missing or empty, and
// checks both.
func applyDefaults(obj object, fallbackName string) error {
	name, err := stringField(obj, "name")
	if err != nil {
		return err
	}
	if name == "" {
		if fallbackName == "" {
			return errors.New(`missing "name"`)
		}
		name = fallbackName
		obj["name"] = quote(fallbackName)
	}
	if err := ValidateName(name); err != nil {
		return err
	}
	cniVersion, err := stringField(obj, "cniVersion")
	if err != nil {
		return err
	}
	if cniVersion == "" {
		obj["cniVersion"] = quote(DefaultCNIVersion)
		return nil
	}
	if _, _, _, err := version.ParseVersion(cniVersion); err != nil {
		return fmt.Errorf("cniVersion %q: not a version", cniVersion)
	}
	return nil
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// parseConf converts a single plugin conf into a one-plugin list.
func parseConf(obj object) (*libcni.NetworkConfigList, error) {
	if err := checkType(obj); err != nil {
		return nil, err
	}
	plugin, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("re-encoding config: %w", err)
	}
	plugins, err := json.Marshal([]json.RawMessage{plugin})
	if err != nil {
		return nil, fmt.Errorf("re-encoding config: %w", err)
	}
	return parseList(object{"cniVersion": obj["cniVersion"], "name": obj["name"], "plugins": plugins})
}

// parseList checks each plugin of a conflist, then lets libcni decode it.
func parseList(obj object) (*libcni.NetworkConfigList, error) {
	var plugins []json.RawMessage
	if err := json.Unmarshal(obj["plugins"], &plugins); err != nil {
		return nil, errors.New(`"plugins" must be a list of plugin objects`)
	}
	if len(plugins) == 0 {
		return nil, errors.New(`"plugins" is empty`)
	}
	for i, raw := range plugins {
		if err := checkPlugin(raw); err != nil {
			return nil, fmt.Errorf("plugin %d: %w", i+1, err)
		}
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("re-encoding config: %w", err)
	}
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return nil, libcniError(err)
	}
	return list, nil
}

func checkPlugin(raw json.RawMessage) error {
	var plugin object
	if err := json.Unmarshal(raw, &plugin); err != nil || plugin == nil {
		return errors.New("not a JSON object")
	}
	return checkType(plugin)
}

// checkType checks the "type" of a conf or of one plugin of a list, and the type of its
// "ipam" block: the plugin runs that binary by name from the same bin dir, as root.
func checkType(obj object) error {
	t, err := stringField(obj, "type")
	if err != nil {
		return err
	}
	if t == "" {
		return errors.New(`missing "type" (a conf needs "type", a conflist "plugins")`)
	}
	if err := ValidateType(t); err != nil {
		return err
	}
	raw, ok := obj["ipam"]
	if !ok || string(raw) == "null" {
		return nil
	}
	var ipam object
	if err := json.Unmarshal(raw, &ipam); err != nil {
		return errors.New(`"ipam" must be a JSON object`)
	}
	it, err := stringField(ipam, "type")
	if err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	if _, has := ipam["type"]; !has {
		return nil
	}
	if err := ValidateType(it); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	if it == "multinet-ipam" { // the parser multinetd's address manager runs at ADD
		conf, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("ipam: %w", err)
		}
		if _, err := pool.Parse(conf); err != nil {
			return fmt.Errorf("ipam (multinet-ipam): %w", err)
		}
	}
	return nil
}

// validateList checks what libcni made of the config: it, not the raw JSON,
// decides which binary runs.
func validateList(list *libcni.NetworkConfigList) error {
	if err := ValidateName(list.Name); err != nil {
		return err
	}
	if len(list.Plugins) == 0 {
		return errors.New("no plugins")
	}
	for i, plugin := range list.Plugins {
		if plugin == nil || plugin.Network == nil {
			return fmt.Errorf("plugin %d: empty", i+1)
		}
		if err := ValidateType(plugin.Network.Type); err != nil {
			return fmt.Errorf("plugin %d: %w", i+1, err)
		}
	}
	return nil
}

// jsonError describes a JSON decoding error by position and kind, never by
// content: a config may hold secrets.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("invalid JSON at offset %d", syntax.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Errorf("config must be a JSON object, not a JSON %s", jsonKind(typ.Value))
	case errors.As(err, &typ):
		return fmt.Errorf("field %q: a JSON %s where %s is expected", typ.Field, jsonKind(typ.Value), typ.Type)
	}
	return err
}

// jsonKind keeps "number" of a description like "number -5".
func jsonKind(value string) string {
	kind, _, _ := strings.Cut(value, " ")
	return kind
}

// libcniError turns libcni's decoding errors into ours; its other errors say
// nothing of the content and are wrapped as they are.
func libcniError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syntax) || errors.As(err, &typ) {
		return fmt.Errorf("invalid config: %w", jsonError(err))
	}
	return fmt.Errorf("invalid config: %w", err)
}
