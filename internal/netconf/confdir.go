package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// confExtensions are the file name endings FromConfDir reads.
var confExtensions = []string{".conf", ".conflist", ".json"}

// NotFoundError reports that no conf file in Dir has the network Name.
type NotFoundError struct {
	Dir  string
	Name string
	// Unreadable lists the files that could not be read or decoded and so
	// might have been the one.
	Unreadable []string
}

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("no CNI config with network name %q in %s", e.Name, e.Dir)
	if len(e.Unreadable) > 0 {
		msg += fmt.Sprintf(" (unreadable files skipped: %s)", strings.Join(e.Unreadable, ", "))
	}
	return msg
}

// FromConfDir returns the conflist of the first file in dir (by file name)
// among *.conf, *.conflist and *.json whose network "name" is name. It is how
// a NAD with an empty spec.config finds its config. Its types are validated
// as Parse's are; no match gives a *NotFoundError.
func FromConfDir(dir, name string) (*libcni.NetworkConfigList, error) {
	if name == "" {
		return nil, errors.New("conf dir lookup: empty network name")
	}
	entries, err := os.ReadDir(dir) // sorted by file name
	if err != nil {
		return nil, fmt.Errorf("reading CNI conf dir: %w", err)
	}
	notFound := &NotFoundError{Dir: dir, Name: name}
	for _, entry := range entries {
		if entry.IsDir() || !isConfFile(entry.Name()) {
			continue
		}
		path := filepath.Join(dir, entry.Name())
		data, found, err := readIfNamed(path, name)
		if err != nil {
			notFound.Unreadable = append(notFound.Unreadable, entry.Name())
			continue
		}
		if !found {
			continue
		}
		list, err := Parse(data, name)
		if err != nil {
			return nil, fmt.Errorf("CNI config %s: %w", path, err)
		}
		return list, nil
	}
	return nil, notFound
}

func isConfFile(fileName string) bool {
	ext := filepath.Ext(fileName)
	for _, want := range confExtensions {
		if ext == want {
			return true
		}
	}
	return false
}

// readIfNamed reads a conf file and reports whether its network is name.
func readIfNamed(path, name string) ([]byte, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	var head struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, false, err
	}
	return data, head.Name == name, nil
}
