"""Certificates: 住民票の写し (juminhyo), 税証明 (tax), 国民健康保険 (nhi).

Each module lays a document out on a `printing.canvas.Canvas` and hands it to
`printing.layout.finish`, which adds the common page parts, signs the QR and renders.
What may be issued to whom is decided by the issuance rules; these modules take the
allowed options as plain frozen dataclasses and print exactly what they are given.
"""
