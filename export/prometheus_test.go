package export

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A scrape shows the last interval: each process's counter with its
// identity as labels, the host on target_info.
func TestPrometheusScrape(t *testing.T) {
	p, err := NewPrometheus("127.0.0.1:0", hostAttrs())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Fatalf("listening on %s", p.Addr())
	}
	if err := p.Export(context.Background(), threeResources()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + p.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		// threeResources: pid 200's fsync errors counter is 2, pid 100's read is 1.
		`process_pid="200"`,
		`telagent_syscall_errors_total{`,
		`target_info{`,
		`host_name="node-1"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q:\n%s", want, text)
		}
	}
	var found bool
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "telagent_syscall_errors_total{") && strings.Contains(line, `process_pid="200"`) &&
			strings.Contains(line, `telagent_syscall_name="fsync"`) {
			found = true
			if !strings.HasSuffix(line, " 2") {
				t.Errorf("pid 200 fsync errors: %q, want value 2", line)
			}
			if strings.Contains(line, "host_name") {
				t.Errorf("host attributes belong on target_info, not on series: %q", line)
			}
		}
	}
	if !found {
		t.Errorf("no pid 200 fsync errors series:\n%s", text)
	}
	// The overflow series of the host resource keeps its marker.
	if !strings.Contains(text, `otel_metric_overflow="true"`) {
		t.Errorf("no overflow series:\n%s", text)
	}
}
