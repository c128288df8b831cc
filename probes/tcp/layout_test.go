package tcp

import (
	"reflect"
	"testing"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
)

// TestLayout: the key and value structs bpf2go generated from the compiled
// object (its BTF) are exactly the schema's tcp_conn metric set.
func TestLayout(t *testing.T) {
	testutil.CheckLayout(t, entity.MetricSetTCPConn, reflect.TypeOf(tcpTcpConnKey{}), reflect.TypeOf(tcpTcpConnValue{}))
}
