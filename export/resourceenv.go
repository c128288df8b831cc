package export

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
)

// ResourceFromEnv returns the attributes of OTEL_RESOURCE_ATTRIBUTES
// ("k8s.node.name=node-1,deployment.environment.name=prod", values
// URL-decoded) and OTEL_SERVICE_NAME (service.name, which wins over a
// service.name in the list), parsed as the OTel SDK does. The agent adds
// them to every resource it exports; its own host and process attributes
// win on a clash. A malformed list is an error naming the variable.
func ResourceFromEnv(ctx context.Context) ([]attribute.KeyValue, error) {
	res, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return res.Attributes(), nil
}
