package entity

import (
	"bytes"
	"strings"

	"go.opentelemetry.io/otel/attribute"
)

// Container is what a process's cgroup path says about the container and
// Kubernetes pod it runs in. Empty fields were not in the path.
//
// The pod's name and namespace are not: kubelet names pod cgroups by the
// pod's UID only, and container runtimes name container cgroups by the
// container id. Those come from the API server, which the agent does not
// talk to; a Collector's k8sattributes processor adds them downstream,
// keyed by k8s.pod.uid or container.id.
type Container struct {
	ID     string // container.id: 64 lowercase hex digits
	PodUID string // k8s.pod.uid: the pod's UUID, with dashes
}

// Attributes returns the container.id and k8s.pod.uid attributes that are
// known, for the process's Resource.
func (c Container) Attributes() []attribute.KeyValue {
	var kv []attribute.KeyValue
	if c.ID != "" {
		kv = append(kv, AttrContainerID.String(c.ID))
	}
	if c.PodUID != "" {
		kv = append(kv, AttrK8sPodUID.String(c.PodUID))
	}
	return kv
}

// ParseCgroup reads the contents of /proc/<pid>/cgroup (cgroup v2 "0::/path",
// or the v1 and hybrid lines "N:controllers:/path") and finds the container
// id and pod UID in any of its paths. It understands the layouts container
// runtimes and kubelet use with both cgroup drivers:
//
//	systemd: /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope
//	         (also crio-<id>.scope, docker-<id>.scope, libpod-<id>.scope)
//	cgroupfs: /kubepods/burstable/pod<uid>/<id>, /docker/<id>
//
// Paths may be relative to the reader's cgroup namespace ("/../../kubepods..."),
// which keeps the segments that matter. A runtime's helper processes in a
// pod (crio-conmon-<id>.scope) belong to the pod but to no container. Input
// that matches nothing gives the zero Container; malformed input never fails.
func ParseCgroup(data []byte) Container {
	var c Container
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		// The path is everything after the second colon (it may itself
		// contain colons in exotic setups).
		_, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		_, path, ok := bytes.Cut(rest, []byte{':'})
		if !ok {
			continue
		}
		pc := parseCgroupPath(string(path))
		if c.ID == "" {
			c.ID = pc.ID
		}
		if c.PodUID == "" {
			c.PodUID = pc.PodUID
		}
		if c.ID != "" && c.PodUID != "" {
			break
		}
	}
	return c
}

// parseCgroupPath looks at one cgroup path's segments. The innermost
// container id wins (nested runtimes: docker in a pod).
func parseCgroupPath(path string) Container {
	var c Container
	for seg := range strings.SplitSeq(path, "/") {
		if id, ok := containerIDOf(seg); ok {
			c.ID = id
		}
		if uid, ok := podUIDOf(seg); ok {
			c.PodUID = uid
		}
	}
	return c
}

// runtimeScopePrefixes are the systemd scope names runtimes give a
// container's cgroup: <prefix><id>.scope.
var runtimeScopePrefixes = []string{"cri-containerd-", "crio-", "docker-", "libpod-", "containerd-"}

func containerIDOf(seg string) (string, bool) {
	if isHexID(seg) { // cgroupfs driver: the id is the whole segment
		return seg, true
	}
	name, ok := strings.CutSuffix(seg, ".scope")
	if !ok {
		return "", false
	}
	for _, p := range runtimeScopePrefixes {
		if id, ok := strings.CutPrefix(name, p); ok && isHexID(id) {
			return id, true
		}
	}
	return "", false
}

// isHexID: the 64 lowercase hex digits of a container id.
func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// podUIDOf recognises a pod's cgroup: "pod<uid>" (cgroupfs driver) or
// "kubepods[-<qos>]-pod<uid>.slice" (systemd driver, where systemd's slice
// naming turned the UID's dashes into underscores).
func podUIDOf(seg string) (string, bool) {
	var uid string
	switch {
	case strings.HasPrefix(seg, "pod"):
		uid = seg[len("pod"):]
	case strings.HasPrefix(seg, "kubepods") && strings.HasSuffix(seg, ".slice"):
		i := strings.LastIndex(seg, "-pod")
		if i < 0 {
			return "", false
		}
		uid = strings.ReplaceAll(strings.TrimSuffix(seg[i+len("-pod"):], ".slice"), "_", "-")
	default:
		return "", false
	}
	if !isUUID(uid) {
		return "", false
	}
	return uid, true
}

// isUUID: 8-4-4-4-12 hex digits, as Kubernetes UIDs are. Static pods
// (from manifests on the node) get a UID that is an md5 hash in the same
// shape, so they match too.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			ch := s[i]
			if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f') {
				return false
			}
		}
	}
	return true
}
