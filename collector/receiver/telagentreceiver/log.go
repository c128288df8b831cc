package telagentreceiver

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newSlogLogger gives the agent (which logs with log/slog) the
// Collector's logger, so its lines go where and at the level the
// Collector's service::telemetry::logs says.
func newSlogLogger(l *zap.Logger) *slog.Logger {
	return slog.New(&zapHandler{core: l.Core()})
}

// zapHandler is a slog.Handler writing to a zap core. Groups prefix keys
// ("group.key").
type zapHandler struct {
	core   zapcore.Core
	prefix string
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	case l >= slog.LevelInfo:
		return zapcore.InfoLevel
	}
	return zapcore.DebugLevel
}

func (h *zapHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.core.Enabled(zapLevel(l))
}

func (h *zapHandler) Handle(_ context.Context, r slog.Record) error {
	ent := zapcore.Entry{Level: zapLevel(r.Level), Time: r.Time, Message: r.Message}
	ce := h.core.Check(ent, nil)
	if ce == nil {
		return nil
	}
	fields := make([]zap.Field, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, h.field(a))
		return true
	})
	ce.Write(fields...)
	return nil
}

func (h *zapHandler) field(a slog.Attr) zap.Field {
	v := a.Value.Resolve()
	if err, ok := v.Any().(error); ok {
		return zap.NamedError(h.prefix+a.Key, err)
	}
	return zap.Any(h.prefix+a.Key, v.Any())
}

func (h *zapHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	fields := make([]zap.Field, 0, len(attrs))
	for _, a := range attrs {
		fields = append(fields, h.field(a))
	}
	return &zapHandler{core: h.core.With(fields), prefix: h.prefix}
}

func (h *zapHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &zapHandler{core: h.core, prefix: h.prefix + name + "."}
}

func zapError(err error) zap.Field { return zap.Error(err) }
