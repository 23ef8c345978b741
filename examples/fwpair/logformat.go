package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// checkLogFormat validates -log-format with the error of every other
// setting: flag, value, allowed values.
func checkLogFormat(format string) error {
	if format != "text" && format != "json" {
		return fmt.Errorf("fwpair: -log-format %q out of range (text, json)", format)
	}
	return nil
}

// newFormatLogger is newLogger with -log-format: "text" (slog's key=value
// lines) or "json" (one object a line). Like newLogger it adds no
// attributes.
func newFormatLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return newLogger(w, level)
}

// effectiveLogFormat returns -log-format when the command line gives it,
// else the configuration file's log_format, else "text": a unit file can
// leave the flag out and the file decides.
func effectiveLogFormat(fl *flag.FlagSet, flagValue, configValue string) string {
	given := false
	fl.Visit(func(f *flag.Flag) { given = given || f.Name == "log-format" })
	switch {
	case given:
		return flagValue
	case configValue != "":
		return configValue
	}
	return "text"
}
