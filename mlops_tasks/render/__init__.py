"""Pure text out: the notebook HTML, the report page, JUnit XML. Imports nothing of the
package."""
