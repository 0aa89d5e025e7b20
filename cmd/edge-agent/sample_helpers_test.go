package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/edge-agent/edge-agent/sensors"
)

// failingSource is a still camera whose every Run fails at once.
type failingSource struct{}

func newSyntheticFailing() (sensors.Source, error) { return failingSource{}, nil }

func (failingSource) Info() sensors.Info {
	return sensors.Info{Name: "cam", Kind: "test", Class: sensors.Still, Rate: 10}
}

func (failingSource) Run(ctx context.Context, out chan<- sensors.Sample) error {
	return errors.New("fake camera failure")
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
