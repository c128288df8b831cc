package entity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

func TestHostAttributes(t *testing.T) {
	const etcID, dbusID = "4c0ffee4c0ffee4c0ffee4c0ffee4c0f", "d0b5d0b5d0b5d0b5d0b5d0b5d0b5d0b5"
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		files   map[string]string
		wantID  string
		wantErr []string
	}{
		{name: "systemd", files: map[string]string{"etc/machine-id": etcID + "\n"}, wantID: etcID},
		{name: "dbus only", files: map[string]string{"var/lib/dbus/machine-id": dbusID + "\n"}, wantID: dbusID},
		{name: "both", files: map[string]string{
			"etc/machine-id": etcID + "\n", "var/lib/dbus/machine-id": dbusID + "\n",
		}, wantID: etcID},
		{name: "empty etc, dbus present", files: map[string]string{
			"etc/machine-id": "\n", "var/lib/dbus/machine-id": dbusID,
		}, wantID: dbusID},
		{name: "missing both", wantErr: []string{"host.id", "systemd-machine-id-setup"}},
		{name: "both empty", files: map[string]string{
			"etc/machine-id": "", "var/lib/dbus/machine-id": " \n",
		}, wantErr: []string{"empty", "systemd-machine-id-setup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, content := range tt.files {
				p = filepath.Join(root, p)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, p, content)
			}
			got, err := HostAttributes(root)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, got %v", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if tt.files == nil && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("error %q does not wrap fs.ErrNotExist", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := []attribute.KeyValue{
				AttrHostID.String(tt.wantID),
				AttrHostName.String(hostname),
				AttrOSType.String(runtime.GOOS),
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}
