package entity

import (
	"reflect"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

// The refs of the agent's Resources, written out by hand: host and os on
// every one, process where both identifying keys are there, container and
// k8s.pod from the cgroup; none for an entity with an identifying key
// missing (a process.pid alone identifies nothing).
func TestRefs(t *testing.T) {
	host := []attribute.KeyValue{AttrHostID.String("m"), AttrHostName.String("n"), AttrHostArch.String("amd64"), AttrOSType.String("linux")}
	hostRefs := []Ref{
		{Type: "host", IDKeys: []attribute.Key{AttrHostID}, DescriptionKeys: []attribute.Key{AttrHostName, AttrHostArch}},
		{Type: "os", IDKeys: []attribute.Key{AttrOSType}},
	}
	proc := Ref{Type: "process", IDKeys: []attribute.Key{AttrProcessPID, AttrProcessCreationTime}, DescriptionKeys: []attribute.Key{AttrProcessCommand}}
	for _, tc := range []struct {
		name  string
		attrs []attribute.KeyValue
		want  []Ref
	}{
		{"host", host, hostRefs},
		{"process", append(host[:4:4], AttrProcessPID.Int(7), AttrProcessCreationTime.String("t"), AttrProcessCommand.String("/bin/x"), AttrProcessExecutableName.String("x")),
			append(hostRefs[:2:2], proc)},
		{"pid alone", append(host[:4:4], AttrProcessPID.Int(7)), hostRefs},
		{"container and pod", append(host[:4:4], AttrContainerID.String("c"), AttrK8sPodUID.String("u")),
			[]Ref{{Type: "container", IDKeys: []attribute.Key{AttrContainerID}}, hostRefs[0], {Type: "k8s.pod", IDKeys: []attribute.Key{AttrK8sPodUID}}, hostRefs[1]}},
		{"nothing", nil, nil},
	} {
		set := attribute.NewSet(tc.attrs...)
		if got := Refs(&set); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: refs\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}
