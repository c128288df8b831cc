package entity

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"go.opentelemetry.io/otel/attribute"
)

// HostAttributes returns the host entity's attributes: host.id from
// machine-id (stable for the life of the installation), host.name, os.type.
// root is "/" normally; tests pass a fake tree.
func HostAttributes(root string) ([]attribute.KeyValue, error) {
	id, err := readMachineID(root)
	if err != nil {
		return nil, err
	}
	name, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("host name: %w", err)
	}
	return []attribute.KeyValue{
		AttrHostID.String(id),
		AttrHostName.String(name),
		AttrOSType.String(runtime.GOOS),
	}, nil
}

func readMachineID(root string) (string, error) {
	var firstErr error
	// /etc/machine-id is systemd's; dbus keeps a copy where systemd is absent.
	for _, p := range []string{"etc/machine-id", "var/lib/dbus/machine-id"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err == nil {
			if id := strings.TrimSpace(string(b)); id != "" {
				return id, nil
			}
			err = fmt.Errorf("%s is empty", p)
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return "", fmt.Errorf("host.id: %w (create one with systemd-machine-id-setup)", firstErr)
}
