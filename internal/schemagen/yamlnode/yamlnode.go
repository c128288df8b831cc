// Package yamlnode reads keys of a yaml.v3 mapping node: the registry
// checker and the semconv excerpt generator walk raw nodes (they need line
// numbers and keys the typed model does not keep).
package yamlnode

import "gopkg.in/yaml.v3"

// Get is the value of key in mapping m, or nil (m nil or not a mapping,
// key absent).
func Get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// Scalar is key's value when it is a scalar, else "".
func Scalar(m *yaml.Node, key string) string {
	if v := Get(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// Seq is key's items when it is a sequence, else nil.
func Seq(m *yaml.Node, key string) []*yaml.Node {
	if v := Get(m, key); v != nil && v.Kind == yaml.SequenceNode {
		return v.Content
	}
	return nil
}
