"""Sources of bulk data for imports: readers and generators that yield plain records (no CRM state).

`online_retail` reads the UCI Online Retail II data set, `synthetic` generates a reproducible data set
with personal data; both yield the shapes in `records`. api/usecases/imports.py puts them in the CRM.
"""
