"""Certificates as PDF with exact glyphs, signed QR codes, and CUPS printing."""
