"""Note exports for other systems: FHIR R4 documents, PDF for signed notes, plain text/markdown.

Every format renders one :class:`~clinscribe.exports.document.ExportedNote`, built by
:mod:`clinscribe.exports.service` from a stored note version and its consultation.
"""
