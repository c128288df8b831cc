package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/internal/config"
	"github.com/telagent/telagent/internal/runconfig"
)

// configFlagName is the flag, and TELAGENT_CONFIG the variable, that name
// a settings file.
const configFlagName = "config"

// withConfigFile gives cmd a --config FILE flag: a YAML file whose keys are
// cmd's long flag names. It knows no flag in particular, so a flag added to
// cmd can be set from the file at once. Values go through the flags' own
// parsers (c.Set) and then through the same checks in the action as the
// command line's; a setting on the command line (or in a flag's
// environment variable) wins over the file.
func withConfigFile(cmd *cli.Command) *cli.Command {
	cmd.Flags = append(cmd.Flags, &cli.StringFlag{
		Name:      configFlagName,
		EnvVars:   []string{"TELAGENT_CONFIG"},
		TakesFile: true,
		Usage:     "YAML file of settings: keys are these flags' long names (interval: 5s); flags on the command line win",
	})
	action := cmd.Action
	cmd.Action = func(c *cli.Context) error {
		origins, err := applyConfigFile(c, cmd.Flags)
		if err != nil {
			return err
		}
		return attributeToFile(action(c), origins)
	}
	return cmd
}

// configFlags describes cmd's flags for the file parser; the config and
// help flags themselves cannot be set from a file.
func configFlags(flags []cli.Flag) []config.Flag {
	var out []config.Flag
	for _, f := range flags {
		kind := config.Scalar
		if d, ok := f.(cli.DocGenerationFlag); ok && !d.TakesValue() {
			kind = config.Bool
		}
		if s, ok := f.(cli.DocGenerationSliceFlag); ok && s.IsSliceFlag() {
			kind = config.List
		}
		for _, name := range f.Names() {
			if name == configFlagName || name == "help" || len(name) == 1 {
				continue
			}
			out = append(out, config.Flag{Name: name, Kind: kind})
		}
	}
	return out
}

// origin is where in the file a flag was set.
type origin struct {
	file string
	line int
	path string
}

// applyConfigFile sets, from the --config file, every flag the command
// line left unset, and returns where each came from.
func applyConfigFile(c *cli.Context, flags []cli.Flag) (map[string]origin, error) {
	file := c.String(configFlagName)
	if file == "" {
		return nil, nil
	}
	data, err := readConfig(file)
	if err != nil {
		return nil, err
	}
	settings, err := config.Parse(file, data, configFlags(flags))
	if err != nil {
		return nil, usageError{err.Error()}
	}
	origins := map[string]origin{}
	for _, s := range settings {
		if c.IsSet(s.Flag) {
			continue // the command line wins
		}
		for _, v := range s.Values {
			if err := c.Set(s.Flag, v); err != nil {
				return nil, usageError{(&config.Error{File: file, Line: s.Line, Path: s.Path,
					Msg: describeSetError(lookupFlag(flags, s.Flag), v, err)}).Error()}
			}
		}
		origins[s.Flag] = origin{file: file, line: s.Line, path: s.Path}
	}
	return origins, nil
}

// readConfig reads a settings file. It is opened without blocking and
// must be a regular file: opening a FIFO for reading would otherwise wait
// for a writer, forever and deaf to SIGINT, and a device would be read.
func readConfig(file string) ([]byte, error) {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, usagef("--config %s", runconfig.DescribePathError(fmt.Errorf("%s: %w", pe.Path, pe.Err)))
		}
		return nil, usagef("--config %s: %v", file, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, usagef("--config %s: %v", file, err)
	}
	if !st.Mode().IsRegular() {
		return nil, usagef("--config %s: not a regular file", file)
	}
	if st.Size() > config.MaxSize {
		return nil, usageError{config.TooLarge(file, st.Size()).Error()}
	}
	data, err := io.ReadAll(io.LimitReader(f, config.MaxSize+1))
	if err != nil {
		return nil, usagef("--config %s: %v", file, err)
	}
	return data, nil
}

func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// describeSetError words a flag parser's rejection of v: `invalid duration
// "5x"` rather than Go's `time: invalid duration "5x"`.
func describeSetError(f cli.Flag, v string, err error) string {
	var num *strconv.NumError
	if _, ok := f.(*cli.DurationFlag); ok {
		return fmt.Sprintf("invalid duration %q (e.g. 10s, 1m30s)", v)
	}
	switch {
	case errors.As(err, &num):
		return fmt.Sprintf("invalid number %q (%v)", v, num.Err)
	case err.Error() == "parse error": // the flag package's word for a bad number
		return fmt.Sprintf("invalid number %q", v)
	case err.Error() == "value out of range":
		return fmt.Sprintf("number %q out of range", v)
	case strings.HasPrefix(err.Error(), "time: "):
		return strings.TrimPrefix(err.Error(), "time: ")
	}
	return fmt.Sprintf("invalid value %q: %v", v, err)
}

// attributeToFile points a usage error about a flag that the file set
// ("--interval 0s: must be positive") at the file's line instead
// ("telagent.yaml:3: interval 0s: must be positive"): the user has to edit
// the file, not the command line.
func attributeToFile(err error, origins map[string]origin) error {
	var u usageError
	if len(origins) == 0 || !errors.As(err, &u) || !strings.HasPrefix(u.msg, "--") {
		return err
	}
	name := u.msg[2:]
	if i := strings.IndexAny(name, " :="); i >= 0 {
		name = name[:i]
	}
	o, ok := origins[name]
	if !ok {
		return err
	}
	return usageError{fmt.Sprintf("%s:%d: %s%s", o.file, o.line, o.path, u.msg[2+len(name):])}
}

// oneLine keeps an error one line of valid UTF-8 whatever the input it
// quotes: a path, key or value given on the command line or in the config
// file may hold a newline or invalid bytes ("--exe $'a\nb'"), and users and
// log collectors read the error as one line. Control characters are
// written as Go escapes (\n, \x1b), invalid bytes as U+FFFD.
func oneLine(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if strings.IndexFunc(msg, unicode.IsControl) < 0 {
		return msg
	}
	var b strings.Builder
	for _, r := range msg {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
