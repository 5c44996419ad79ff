"""Adapters: named, reusable units of step code, and the shipped library."""
