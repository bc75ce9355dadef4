"""The field family's own phrase banks: sentences per language, code and JSON snippets.

Written for this family alone (nothing here comes from the tuning library's
``texts.toml``). Prose holds no quotes, brackets or parentheses, so a run of
letters inserted into it is never masked as a citation; every Python snippet
parses and every break of one does not (``tests/test_field.py`` checks both).
"""

from __future__ import annotations

__all__ = [
    "BASH_SNIPPETS",
    "BREAKS",
    "FOREIGN_RUNS",
    "LANGUAGES",
    "PYTHON_SNIPPETS",
    "SCRIPTS_OF",
    "Language",
]

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    """What an answer in one language is made of."""

    sentences: tuple[str, ...]
    """Prose sentences, each a line of its own length."""
    list_intro: str
    """Opens a bulleted answer."""
    code_intro: str
    """Opens an answer holding code."""
    code_outro: str
    """Closes it."""
    data_intro: str
    """Opens an answer holding a JSON block."""
    loop: str
    """The phrase a degenerate answer repeats."""
    spaced: bool = True
    """Words are separated by spaces (else a run may go between any two letters)."""


LANGUAGES: dict[str, Language] = {
    "en": Language(
        (
            "The main difference is how each option handles errors at runtime.",
            "You can change this setting later from the project dashboard.",
            "Most teams start with the default configuration and adjust it over time.",
            "This approach keeps the code short and easy to test.",
            "The report shows that revenue grew in every region except the north.",
            "Before you upgrade, make a backup of your data and read the release notes.",
            "A good rule of thumb is to keep each function focused on a single task.",
            "The meeting notes list three decisions and two open questions.",
            "If the request times out, retry it with a smaller batch of records.",
            "Water boils at a lower temperature at high altitude, so cooking takes longer.",
            "The contract renews automatically unless either party cancels in writing.",
            "Sorting the list first makes the search much faster on large inputs.",
            "The survey received about four hundred answers over two weeks.",
            "Keep secrets in environment variables instead of writing them into the code.",
        ),
        "Here are the key points:",
        "Here is a function that does this:",
        "Call it with your own input to try it out.",
        "Here is the extracted data:",
        "and then the value is updated",
    ),
    "es": Language(
        (
            "La diferencia principal es cómo cada opción gestiona los errores.",
            "Puedes cambiar este ajuste más tarde desde el panel del proyecto.",
            "La mayoría de los equipos empiezan con la configuración por defecto.",
            "Este enfoque mantiene el código corto y fácil de probar.",
            "El informe muestra que las ventas crecieron en todas las regiones.",
            "Antes de actualizar, haz una copia de seguridad de tus datos.",
            "Conviene que cada función se ocupe de una sola tarea.",
            "El contrato se renueva automáticamente salvo que una parte lo cancele por escrito.",
            "Ordenar la lista primero hace que la búsqueda sea mucho más rápida.",
            "La encuesta recibió unas cuatrocientas respuestas en dos semanas.",
        ),
        "Estos son los puntos clave:",
        "Aquí tienes una función que lo hace:",
        "Pruébala con tus propios datos.",
        "Estos son los datos extraídos:",
        "y luego el valor se actualiza",
    ),
    "de": Language(
        (
            "Der wichtigste Unterschied liegt darin, wie jede Option mit Fehlern umgeht.",
            "Du kannst diese Einstellung später im Projekt-Dashboard ändern.",
            "Die meisten Teams beginnen mit der Standardkonfiguration und passen sie an.",
            "Dieser Ansatz hält den Code kurz und leicht testbar.",
            "Der Bericht zeigt, dass der Umsatz in allen Regionen gewachsen ist.",
            "Erstelle vor dem Update eine Sicherung deiner Daten.",
            "Jede Funktion sollte nur eine einzige Aufgabe erfüllen.",
            "Der Vertrag verlängert sich automatisch, wenn niemand schriftlich kündigt.",
            "Wenn du die Liste zuerst sortierst, wird die Suche deutlich schneller.",
            "Die Umfrage erhielt in zwei Wochen etwa vierhundert Antworten.",
        ),
        "Die wichtigsten Punkte:",
        "Mit dieser Funktion geht es:",
        "Probiere sie mit deinen eigenen Daten aus.",
        "Hier sind die extrahierten Daten:",
        "und dann wird der Wert aktualisiert",
    ),
    "fr": Language(
        (
            "La principale différence tient à la façon dont chaque option gère les erreurs.",
            "Vous pouvez modifier ce réglage plus tard depuis le tableau de bord.",
            "La plupart des équipes commencent avec la configuration par défaut.",
            "Cette approche garde le code court et facile à tester.",
            "Le rapport montre que les ventes ont progressé dans toutes les régions.",
            "Avant la mise à jour, faites une sauvegarde de vos données.",
            "Chaque fonction devrait se limiter à une seule tâche.",
            "Le contrat se renouvelle automatiquement sauf résiliation écrite.",
            "Trier la liste au préalable rend la recherche beaucoup plus rapide.",
            "Cette enquête a reçu environ quatre cents réponses en deux semaines.",
        ),
        "Voici les points clés :",
        "Voici une fonction qui le fait :",
        "Essayez-la avec vos propres données.",
        "Voici les données extraites :",
        "et ensuite la valeur est mise à jour",
    ),
    "pt-BR": Language(
        (
            "A principal diferença está em como cada opção trata os erros.",
            "Você pode alterar essa configuração depois no painel do projeto.",
            "A maioria das equipes começa com a configuração padrão.",
            "Essa abordagem mantém o código curto e fácil de testar.",
            "O relatório mostra que as vendas cresceram em todas as regiões.",
            "Antes de atualizar, faça um backup dos seus dados.",
            "Cada função deve cuidar de uma única tarefa.",
            "O contrato é renovado automaticamente, a menos que alguém cancele por escrito.",
            "Ordenar a lista primeiro torna a busca muito mais rápida.",
            "A pesquisa recebeu cerca de quatrocentas respostas em duas semanas.",
        ),
        "Os pontos principais são:",
        "Aqui está uma função que faz isso:",
        "Teste com os seus próprios dados.",
        "Aqui estão os dados extraídos:",
        "e então o valor é atualizado",
    ),
    "vi": Language(
        (
            "Điểm khác biệt chính là cách mỗi lựa chọn xử lý lỗi.",
            "Bạn có thể thay đổi cài đặt này sau trong bảng điều khiển dự án.",
            "Hầu hết các nhóm bắt đầu với cấu hình mặc định rồi điều chỉnh dần.",
            "Cách này giúp mã ngắn gọn và dễ kiểm thử.",
            "Báo cáo cho thấy doanh số tăng ở tất cả các khu vực.",
            "Trước khi cập nhật, hãy sao lưu dữ liệu của bạn.",
            "Mỗi hàm chỉ nên đảm nhận một nhiệm vụ.",
            "Sắp xếp danh sách trước giúp việc tìm kiếm nhanh hơn nhiều.",
        ),
        "Các ý chính như sau:",
        "Bạn có thể dùng hàm sau:",
        "Hãy thử với dữ liệu của bạn.",
        "Dữ liệu đã trích xuất:",
        "và sau đó giá trị được cập nhật",
    ),
    "id": Language(
        (
            "Perbedaan utamanya adalah cara setiap opsi menangani kesalahan.",
            "Anda dapat mengubah pengaturan ini nanti dari dasbor proyek.",
            "Sebagian besar tim memulai dengan konfigurasi bawaan.",
            "Pendekatan ini membuat kode tetap singkat dan mudah diuji.",
            "Laporan menunjukkan penjualan naik di semua wilayah.",
            "Sebelum memperbarui, cadangkan data Anda terlebih dahulu.",
            "Setiap fungsi sebaiknya hanya mengerjakan satu tugas.",
            "Mengurutkan daftar terlebih dahulu membuat pencarian jauh lebih cepat.",
        ),
        "Poin pentingnya:",
        "Berikut fungsi untuk melakukannya:",
        "Coba jalankan dengan data Anda sendiri.",
        "Berikut data yang diekstrak:",
        "lalu nilainya diperbarui",
    ),
    "ja": Language(
        (
            "主な違いは、それぞれの方法がエラーをどう扱うかです。",
            "この設定は後からプロジェクトの管理画面で変更できます。",
            "多くのチームは標準の設定から始めて、少しずつ調整します。",
            "この方法ならコードが短くなり、テストもしやすくなります。",
            "報告書によると、売上はすべての地域で伸びました。",
            "更新する前に、データのバックアップを取ってください。",
            "一つの関数には一つの役割だけを持たせるのがよいでしょう。",
            "契約は書面で解約しない限り自動的に更新されます。",
            "先にリストを並べ替えておくと、検索がずっと速くなります。",
            "アンケートには二週間で約四百件の回答がありました。",
        ),
        "要点は次のとおりです。",
        "次のような関数で実現できます。",
        "お手元のデータで試してみてください。",
        "抽出したデータは次のとおりです。",
        "そして値が更新されます",
        spaced=False,
    ),
    "zh-Hans": Language(
        (
            "主要区别在于每种方案如何处理错误。",
            "你可以稍后在项目控制台中修改这个设置。",
            "大多数团队先使用默认配置，然后逐步调整。",
            "这种做法让代码更短，也更容易测试。",
            "报告显示，所有地区的销售额都有所增长。",
            "升级之前，请先备份你的数据。",
            "每个函数最好只负责一项任务。",
            "除非一方书面取消，合同会自动续签。",
            "先对列表排序，可以让查找快很多。",
            "这次调查在两周内收到了大约四百份回答。",
        ),
        "要点如下：",
        "可以用下面的函数实现：",
        "可以用你自己的数据试一试。",
        "提取的数据如下：",
        "然后数值被更新",
        spaced=False,
    ),
    "ko": Language(
        (
            "가장 큰 차이는 각 방법이 오류를 처리하는 방식입니다.",
            "이 설정은 나중에 프로젝트 대시보드에서 바꿀 수 있습니다.",
            "대부분의 팀은 기본 설정으로 시작해서 조금씩 조정합니다.",
            "이 방법을 쓰면 코드가 짧아지고 테스트하기도 쉽습니다.",
            "보고서에 따르면 모든 지역에서 매출이 늘었습니다.",
            "업데이트하기 전에 데이터를 백업하세요.",
            "함수 하나에는 한 가지 역할만 맡기는 것이 좋습니다.",
            "계약은 서면으로 해지하지 않으면 자동으로 갱신됩니다.",
            "목록을 먼저 정렬하면 검색이 훨씬 빨라집니다.",
            "설문에는 2주 동안 약 400개의 응답이 모였습니다.",
        ),
        "핵심은 다음과 같습니다.",
        "다음 함수로 할 수 있습니다.",
        "직접 데이터를 넣어 실행해 보세요.",
        "추출한 데이터는 다음과 같습니다.",
        "그리고 값이 갱신됩니다",
    ),
    "th": Language(
        (
            "ความแตกต่างหลักคือวิธีที่แต่ละตัวเลือกจัดการกับข้อผิดพลาด",
            "คุณสามารถเปลี่ยนการตั้งค่านี้ได้ภายหลังจากแดชบอร์ดของโปรเจกต์",
            "ทีมส่วนใหญ่เริ่มจากการตั้งค่าเริ่มต้นแล้วค่อย ๆ ปรับ",
            "วิธีนี้ทำให้โค้ดสั้นและทดสอบได้ง่าย",
            "รายงานแสดงว่ายอดขายเพิ่มขึ้นในทุกภูมิภาค",
            "ก่อนอัปเดต ควรสำรองข้อมูลของคุณไว้ก่อน",
            "แต่ละฟังก์ชันควรทำหน้าที่เพียงอย่างเดียว",
            "สัญญาจะต่ออายุโดยอัตโนมัติ เว้นแต่มีการยกเลิกเป็นลายลักษณ์อักษร",
            "การเรียงลำดับรายการก่อนช่วยให้การค้นหาเร็วขึ้นมาก",
            "แบบสำรวจได้รับคำตอบประมาณสี่ร้อยรายการภายในสองสัปดาห์",
        ),
        "ประเด็นสำคัญมีดังนี้",
        "สามารถเขียนฟังก์ชันได้ดังนี้",
        "ลองใช้กับข้อมูลของคุณดู",
        "ข้อมูลที่ดึงออกมามีดังนี้",
        "และค่าจะถูกอัปเดต",
        spaced=False,
    ),
    "hi": Language(
        (
            "मुख्य अंतर यह है कि हर विकल्प गलतियों को कैसे संभालता है।",
            "आप यह सेटिंग बाद में प्रोजेक्ट डैशबोर्ड से बदल सकते हैं।",
            "ज़्यादातर टीमें डिफ़ॉल्ट सेटिंग से शुरू करती हैं।",
            "इस तरीके से कोड छोटा और जाँचने में आसान रहता है।",
            "रिपोर्ट के अनुसार हर क्षेत्र में बिक्री बढ़ी है।",
            "अपडेट करने से पहले अपने डेटा का बैकअप ले लें।",
            "हर फ़ंक्शन को केवल एक ही काम करना चाहिए।",
            "सूची को पहले क्रम में लगाने से खोज बहुत तेज़ हो जाती है।",
        ),
        "मुख्य बातें ये हैं:",
        "यह फ़ंक्शन यह काम करता है:",
        "इसे अपने डेटा के साथ चलाकर देखें।",
        "निकाला गया डेटा यह है:",
        "और फिर मान अपडेट होता है",
    ),
}
"""Answer material per prompt language (BCP-47 tags as the logs carry them)."""

SCRIPTS_OF: dict[str, frozenset[str]] = {
    **{tag: frozenset({"Latin"}) for tag in ("en", "es", "de", "fr", "pt-BR", "vi", "id")},
    "ja": frozenset({"Han", "Hiragana", "Katakana"}),
    "zh-Hans": frozenset({"Han"}),
    "ko": frozenset({"Hangul", "Han"}),
    "th": frozenset({"Thai"}),
    "hi": frozenset({"Devanagari"}),
}
"""The scripts each language is written in: a run of another (non-Latin) script is foreign."""

FOREIGN_RUNS: dict[str, tuple[str, ...]] = {
    "Han": ("的", "是不", "了人我", "在有他这", "中大来上国", "时年得就那", "要下以生会自"),
    "Thai": ("การ", "ที่", "ไม่", "เป็น", "ของ", "และใน", "ข้อมูล"),
    "Hangul": ("의", "이는", "에를", "한고하", "습니다", "지기서"),
    "Cyrillic": ("при", "вет", "данные", "как", "это"),
    "Hiragana": ("の", "には", "をた", "がでて"),
}
"""Garbage a corrupted decode inserts: runs of 1-7 letters of one script."""

PYTHON_SNIPPETS: tuple[str, ...] = (
    "def mean(values):\n    return sum(values) / len(values)\n\nprint(mean([3, 4, 5]))",
    "def is_prime(n):\n    if n < 2:\n        return False\n"
    "    for d in range(2, int(n ** 0.5) + 1):\n        if n % d == 0:\n"
    "            return False\n    return True",
    'import json\n\n\ndef load(path):\n    with open(path, encoding="utf-8") as f:\n'
    "        return json.load(f)",
    "from collections import Counter\n\nwords = text.split()\n"
    "top = Counter(words).most_common(5)\nprint(top)",
    "def chunks(items, size):\n    for i in range(0, len(items), size):\n"
    "        yield items[i:i + size]",
    "class Cache:\n    def __init__(self):\n        self.data = {}\n\n"
    "    def get(self, key, default=None):\n        return self.data.get(key, default)",
    'rows = sorted(rows, key=lambda r: r["date"])\nfor row in rows[:10]:\n'
    '    print(row["date"], row["total"])',
    "async def fetch_all(client, urls):\n    return [await client.get(u) for u in urls]",
    "def retry(fn, attempts=3):\n    for i in range(attempts):\n        try:\n"
    "            return fn()\n        except TimeoutError:\n"
    "            if i == attempts - 1:\n                raise",
    "totals = {}\nfor name, amount in records:\n"
    "    totals[name] = totals.get(name, 0) + amount\nprint(totals)",
)
"""Python that parses (a native-language comment may be added above it)."""

BREAKS: tuple[tuple[str, str], ...] = (
    ("):\n", ")\n"),
    ("(", "(("),
    ("]", ""),
    ("\n    ", "\n  "),
)
"""Edits that break a snippet: (text, replacement), applied to its first occurrence.
Each snippet is broken by the first edit that applies and stops it parsing."""

BASH_SNIPPETS: tuple[str, ...] = (
    "pip install --upgrade requests",
    "export API_TIMEOUT=30\n./run.sh --retries 3",
    "git checkout -b fix/timeout && git push -u origin HEAD",
)
"""Code in a language no detector checks."""
