"""Tests of the curators training pipeline (training/)."""
